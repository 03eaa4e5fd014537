from django.urls import path

from . import views

app_name = "autoscaling"
urlpatterns = [
    path("containers/autoscaling/", views.policy_list, name="policies"),
    path("containers/autoscaling/<int:pk>/", views.policy_detail, name="policy"),
]
