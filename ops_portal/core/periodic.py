"""Built-in periodic work, registered by each app and created as django-celery-beat tasks.

Created once (after migrate) when missing; an administrator's later edits (interval, enabled,
arguments) are kept. Listed and edited under Schedules in the UI and /api/system-schedules/.
"""
import json
from dataclasses import dataclass, field

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
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

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


register("jobs: reap lost jobs", "jobs.reap_lost", 30,
         "Mark running jobs whose worker stopped heartbeating as lost.")
register("jobs: dispatch waiting jobs", "jobs.dispatch_waiting", 15,
         "Retry queued jobs waiting for a lease or a concurrency slot, and re-send lost messages.")
register("approvals: expire requests", "approvals.expire_due", 60,
         "End approval requests past their time with their policy's outcome.")
register("retention: job output", "jobs.prune_events", 86400,
         "Remove output of jobs that finished more than `days` ago.", days=90)
register("retention: audit log", "audit.prune", 86400,
         "Remove audit rows older than `days` (the removal itself is audited).", days=365)
register("inventory: refresh facts", "jobs.refresh_facts", 6 * 3600,
         "Gather facts from every enabled host, one job per environment (health and reachability too).")
register("compliance: run checks", "jobs.compliance_checks", 86400,
         "Run the security and compliance checks on every enabled host.")
