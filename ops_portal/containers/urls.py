from django.urls import path

from . import swarm_views, views

app_name = "containers"
urlpatterns = [
    path("containers/", views.home, name="home"),
    path("containers/<int:pk>/", views.container_detail, name="container"),
    path("containers/engines/", views.engines, name="engines"),
    path("containers/engines/<int:pk>/", views.engine_detail, name="engine"),
    path("containers/allowed-paths/", views.allowed_paths, name="allowed_paths"),
    path("containers/allowed-paths/<int:pk>/delete/", views.allowed_path_delete, name="allowed_path_delete"),
    path("containers/services/", swarm_views.service_list, name="services"),
    path("containers/services/<int:pk>/", swarm_views.service_detail, name="service"),
    path("containers/stacks/", swarm_views.stack_list, name="stacks"),
    path("containers/stacks/<int:pk>/", swarm_views.stack_detail, name="stack"),
]
