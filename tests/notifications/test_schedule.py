"""The beat schedule that brings back overdue deliveries is a built-in periodic task."""
import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from ops_portal.core import periodic
from ops_portal.notifications.periodic_tasks import RETRY_DUE_SCHEDULE

pytestmark = pytest.mark.django_db


def test_retry_due_runs_every_minute_as_a_built_in_schedule(settings):
    settings.BUILTIN_SCHEDULES_ENABLED = True
    builtin = periodic.builtins()[RETRY_DUE_SCHEDULE]
    assert (builtin.task, builtin.every_seconds) == ("notifications.retry_due", 60)
    PeriodicTask.objects.filter(name=RETRY_DUE_SCHEDULE).delete()

    assert RETRY_DUE_SCHEDULE in periodic.ensure_builtins()

    task = PeriodicTask.objects.get(name=RETRY_DUE_SCHEDULE)
    assert task.task == "notifications.retry_due" and task.enabled
    assert (task.interval.every, task.interval.period) == (60, IntervalSchedule.SECONDS)


def test_the_retry_task_is_registered_with_celery():
    from ops_portal.celery import app

    app.loader.import_default_modules()
    assert {"notifications.retry_due", "notifications.deliver"} <= set(app.tasks)


def test_built_in_schedules_can_be_created_switched_off(settings):
    settings.BUILTIN_SCHEDULES_ENABLED = False
    PeriodicTask.objects.filter(name=RETRY_DUE_SCHEDULE).delete()
    periodic.ensure_builtins()
    assert not PeriodicTask.objects.get(name=RETRY_DUE_SCHEDULE).enabled
