from django.urls import path

from . import views

app_name = "configs"
urlpatterns = [
    path("configs/", views.home, name="home"),
    path("configs/<int:pk>/", views.detail, name="detail"),
    path("configs/<int:pk>/launch/", views.launch, name="launch"),
    path("configs/drift/<int:pk>/remediate/", views.remediate, name="remediate"),
]
