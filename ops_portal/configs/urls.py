from django.urls import path

from . import manage_views, views

app_name = "configs"
urlpatterns = [
    path("configs/", views.home, name="home"),
    path("configs/<int:pk>/", views.detail, name="detail"),
    path("configs/new/", manage_views.config_new, name="new"),
    path("configs/<int:pk>/edit/", manage_views.config_edit, name="edit"),
    path("configs/<int:pk>/delete/", manage_views.config_delete, name="delete"),
    path("configs/<int:pk>/launch/", views.launch, name="launch"),
    path("configs/drift/<int:pk>/remediate/", views.remediate, name="remediate"),
]
