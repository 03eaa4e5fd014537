"""The portal's own periodic work, run as jobs so it shows in the same history, audit and live
views (one job per environment over its enabled hosts), and the built-in periodic tasks that
start it."""
import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import require
from ops_portal.audit.services import record
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from .choices import ACTIVE_STATES
from .launch import launch_adhoc
from .models import Job

log = logging.getLogger(__name__)


def launch_everywhere(action, *, name, values=None, selector=None, limit=20):
    """Launch `action` in every environment with matching enabled hosts, unless the previous such
    job there is still active (work does not pile up behind a slow or unreachable fleet)."""
    actor = Actor.system(Source.SCHEDULE)
    launched = []
    for environment in Environment.objects.all():
        if Job.objects.system().filter(environment=environment, action=action, state__in=ACTIVE_STATES).exists():
            continue
        try:
            job = launch_adhoc(actor, environment=environment, action=action, values=values or {},
                               selector=selector or {"all": True}, strategy={"kind": "parallel", "limit": limit},
                               name=f"{name} ({environment.name})", timeout_seconds=1800, predefined=True)
        except ValidationError as exc:  # no enabled hosts there
            log.debug("no %s in %s: %s", action, environment, exc)
            continue
        except PermissionDenied as exc:  # one environment refusing must not stop the others
            log.warning("%s not launched in %s: %s", action, environment, exc)
            continue
        launched.append(job.pk)
    return launched


MAX_BUILTIN_INTERVAL = 366 * 86400  # the interval's column is a 32-bit integer


def update_builtin(actor, task, *, enabled=None, every_seconds=None):
    """Change a built-in periodic task's interval or switch it off (administrators of all
    environments)."""
    if actor.user is not None:
        require(actor.user, Action.MANAGE, None)
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().get(pk=task.pk)
        before = {"enabled": task.enabled, "every_seconds": task.interval.every if task.interval else None}
        if enabled is not None:
            task.enabled = enabled
        if every_seconds is not None:
            if not 5 <= every_seconds <= MAX_BUILTIN_INTERVAL:
                raise ValidationError({"every_seconds": [f"From 5 to {MAX_BUILTIN_INTERVAL} seconds (a year)."]})
            task.interval, _ = IntervalSchedule.objects.get_or_create(every=every_seconds,
                                                                      period=IntervalSchedule.SECONDS)
        task.save()
        after = {"enabled": task.enabled, "every_seconds": task.interval.every if task.interval else None}
        record(actor, "systemschedule.update", object_type="django_celery_beat.periodictask", object_id=task.pk,
               object_repr=task.name, before=before, after=after)
    return task
