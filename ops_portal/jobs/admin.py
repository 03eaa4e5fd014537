from django.contrib import admin
from django_celery_beat import models as beat

from ops_portal.core.admin import register_read_only

from .models import FreezeWindow, Job, JobSchedule, JobTemplate, Lease, MaintenanceWindow, ScheduleRun

register_read_only(JobTemplate, Job, Lease, FreezeWindow, MaintenanceWindow, JobSchedule, ScheduleRun)

# Beat's own admin would let schedules change behind the audit log: Schedules page and API instead.
for model in (beat.PeriodicTask, beat.IntervalSchedule, beat.CrontabSchedule, beat.SolarSchedule,
              beat.ClockedSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
register_read_only(beat.PeriodicTask)
