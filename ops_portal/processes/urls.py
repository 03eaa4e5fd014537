from django.urls import path

from . import views

app_name = "processes"
urlpatterns = [
    path("processes/", views.home, name="home"),
    path("processes/scan/", views.scan, name="scan"),
    path("processes/hosts/<int:pk>/", views.host_processes, name="host"),
    path("processes/<int:pk>/", views.detail, name="detail"),
    path("processes/<int:pk>/act/", views.act, name="act"),
]
