from django.urls import path

from . import manage_views, views

app_name = "projects"
urlpatterns = [
    path("projects/", views.home, name="home"),
    path("projects/<int:pk>/", views.detail, name="detail"),
    path("projects/new/", manage_views.project_new, name="new"),
    path("projects/<int:pk>/edit/", manage_views.project_edit, name="edit"),
    path("projects/<int:pk>/delete/", manage_views.project_delete, name="delete"),
    path("projects/<int:pk>/sync/", views.sync, name="sync"),
]
