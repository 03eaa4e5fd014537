from django.urls import path

from ops_portal.core.api.router import router

from . import views

router.register("job-templates", views.JobTemplateViewSet)
router.register("jobs", views.JobViewSet)
router.register("freezes", views.FreezeWindowViewSet)
router.register("maintenance-windows", views.MaintenanceWindowViewSet)
router.register("schedules", views.JobScheduleViewSet)
router.register("system-schedules", views.SystemScheduleViewSet, basename="systemschedule")

urlpatterns = [path("actions/", views.ActionListView.as_view(), name="actions")]
