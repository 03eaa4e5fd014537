from django.urls import path

from . import views

app_name = "programs"
urlpatterns = [
    path("programs/", views.home, name="home"),
    path("programs/new/", views.new, name="new"),
    path("programs/refresh/", views.refresh, name="refresh"),
    path("programs/install/<int:host_pk>/", views.install, name="install"),
    path("programs/<int:pk>/", views.detail, name="detail"),
    path("programs/<int:pk>/edit/", views.edit, name="edit"),
    path("programs/<int:pk>/operate/", views.operate, name="operate"),
    path("programs/<int:pk>/configure/", views.configure, name="configure"),
    path("programs/<int:pk>/logs/", views.logs, name="logs"),
]
