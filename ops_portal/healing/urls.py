from django.urls import path

from . import views

app_name = "healing"
urlpatterns = [
    path("containers/healing/", views.policies, name="policies"),
    path("containers/healing/<int:pk>/", views.policy_detail, name="policy"),
    path("containers/<int:pk>/healing/", views.container_panel, name="container_panel"),
]
