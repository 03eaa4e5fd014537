"""Built-in periodic work, declared in each app's periodic_tasks module (loaded by core.declarations)
and created as django-celery-beat tasks.

Created once (after migrate) when missing; an administrator's later edits (interval, enabled,
arguments) are kept. Listed and edited under Schedules in the UI and /api/system-schedules/.
"""
import json
from dataclasses import dataclass, field

from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

_BUILTINS: dict[str, "Builtin"] = {}


@dataclass(frozen=True)
class Builtin:
    name: str
    task: str
    every_seconds: int
    description: str
    kwargs: dict = field(default_factory=dict)


def register(name, task, every_seconds, description, **kwargs):
    _BUILTINS[name] = Builtin(name, task, every_seconds, description, kwargs)


def builtins():
    return dict(_BUILTINS)


def ensure_builtins():
    """Create missing built-in periodic tasks; leave existing ones (and their edits) alone.

    They are created switched off when BUILTIN_SCHEDULES_ENABLED is false (the test suite, whose
    beat must fire only what a test scheduled).
    """
    created = []
    for builtin in _BUILTINS.values():
        if PeriodicTask.objects.filter(name=builtin.name).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(every=builtin.every_seconds,
                                                             period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(name=builtin.name, task=builtin.task, interval=interval,
                                    kwargs=json.dumps(builtin.kwargs), description=builtin.description,
                                    enabled=settings.BUILTIN_SCHEDULES_ENABLED)
        created.append(builtin.name)
    return created

