from django.urls import path

from . import views

app_name = "monitoring"
urlpatterns = [
    path("monitoring/", views.home, name="home"),
    path("monitoring/alerts/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
]
