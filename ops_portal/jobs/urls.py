from django.urls import path

from . import views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.job_list, name="list"),
    path("jobs/new/", views.job_new, name="new"),
    path("jobs/<int:pk>/", views.job_detail, name="detail"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="cancel"),
    path("jobs/<int:pk>/relaunch/", views.job_relaunch, name="relaunch"),
    path("templates/", views.template_list, name="templates"),
    path("templates/<int:pk>/launch/", views.template_launch, name="launch"),
]
