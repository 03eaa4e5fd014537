"""Register the beat schedule that re-queues overdue deliveries (notifications.retry_due, every 60 s)."""
from django.db import migrations
from django.utils import timezone

from ops_portal.notifications.schedules import RETRY_DUE_NAME, ensure_retry_schedule


def add_schedule(apps, schema_editor):
    ensure_retry_schedule(apps.get_model("django_celery_beat", "PeriodicTask"),
                          apps.get_model("django_celery_beat", "IntervalSchedule"))
    # Tell a running beat to reload its schedule.
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=RETRY_DUE_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
