from django.urls import path

from . import manage_views, views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.job_list, name="list"),
    path("jobs/new/", views.job_new, name="new"),
    path("jobs/new/targets/", views.job_targets, name="targets"),
    path("jobs/<int:pk>/", views.job_detail, name="detail"),
    path("jobs/<int:pk>/live/", views.job_live, name="live"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="cancel"),
    path("jobs/<int:pk>/relaunch/", views.job_relaunch, name="relaunch"),
    path("approvals/<int:pk>/dry-run/", views.dry_run_panel, name="dry_run_panel"),
    path("hosts/<int:pk>/run/<str:action>/", views.host_run, name="host_run"),
    path("templates/", views.template_list, name="templates"),
    path("templates/<int:pk>/launch/", views.template_launch, name="launch"),
    path("templates/new/", manage_views.template_new, name="template_new"),
    path("templates/<int:pk>/edit/", manage_views.template_edit, name="template_edit"),
    path("templates/<int:pk>/delete/", manage_views.template_delete, name="template_delete"),
    path("schedules/", views.schedule_list, name="schedules"),
    path("schedules/<int:pk>/toggle/", views.schedule_toggle, name="schedule_toggle"),
    path("schedules/<int:pk>/edit/", manage_views.schedule_edit, name="schedule_edit"),
    path("schedules/<int:pk>/delete/", manage_views.schedule_delete, name="schedule_delete"),
    path("schedules/system/<int:pk>/", views.system_schedule_update, name="system_schedule_update"),
]
