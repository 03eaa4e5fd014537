"""The beat schedule of the notifications app, kept in django_celery_beat's tables.

Migration 0002 creates it; setup_schedules() puts it back (idempotently) if someone removed or
changed it, and is safe to call from any set-up command.
"""
RETRY_DUE_TASK = "notifications.retry_due"
RETRY_DUE_NAME = "notifications: retry due deliveries"
RETRY_DUE_EVERY_SECONDS = 60


def ensure_retry_schedule(periodic_task_model, interval_model):
    """Create or repair the retry_due schedule with the given (possibly historical) models."""
    every, _ = interval_model.objects.get_or_create(every=RETRY_DUE_EVERY_SECONDS, period="seconds")
    task, created = periodic_task_model.objects.get_or_create(
        name=RETRY_DUE_NAME, defaults={"task": RETRY_DUE_TASK, "interval": every, "enabled": True})
    if not created and (task.task != RETRY_DUE_TASK or task.interval_id != every.pk or not task.enabled
                        or task.crontab_id or task.solar_id or task.clocked_id):
        task.task, task.interval, task.enabled = RETRY_DUE_TASK, every, True
        task.crontab = task.solar = task.clocked = None
        task.one_off = False
        task.save()
    return task


def setup_schedules():
    """Make sure beat runs notifications.retry_due every minute."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    task = ensure_retry_schedule(PeriodicTask, IntervalSchedule)
    PeriodicTasks.update_changed()
    return task
