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
from ops_portal.inventory.models import Host, site_queue

from .choices import ACTIVE_STATES
from .launch import DEFAULT_QUEUE, launch_adhoc
from .models import Job

log = logging.getLogger(__name__)


def hosts_by_site():
    """{(environment id, site name or None): names of its enabled hosts there}, each list by name."""
    groups = {}
    for environment_id, site, name in (Host.objects.filter(enabled=True).order_by("name")
                                       .values_list("environment_id", "site__name", "name")):
        groups.setdefault((environment_id, site), []).append(name)
    return groups


def site_selectors(selector=None):
    """[(environment, site, selector)]: the portal's own work over every environment's enabled hosts,
    one job per environment and site (a job runs on one site's workers, and a job spanning sites is
    refused). An environment on one site keeps the selector as given; one spanning sites gets it
    narrowed to each site's hosts by name."""
    selector = selector or {"all": True}
    groups = hosts_by_site()
    environments = Environment.objects.in_bulk({environment_id for environment_id, _ in groups})
    spans = {}
    for environment_id, _ in groups:
        spans[environment_id] = spans.get(environment_id, 0) + 1
    found = []
    for (environment_id, site), names in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        if spans[environment_id] == 1:
            narrowed = selector
        else:
            wanted = set(selector.get("names") or names)
            narrowed = {**selector, "names": [name for name in names if name in wanted]}
            narrowed.pop("all", None)
            if not narrowed["names"]:
                continue
        found.append((environments[environment_id], site, narrowed))
    return found


def launch_everywhere(action, *, name, values=None, selector=None, limit=20, placed=None, timeout_seconds=1800,
                      target_timeout_seconds=None):
    """Launch `action` in every environment (and site) with matching enabled hosts, unless the
    previous such job there is still active (work does not pile up behind a slow or unreachable
    fleet). `placed`: [(environment, site, selector)] to launch in instead (targets other than
    hosts, such as engines), one job each."""
    actor = Actor.system(Source.SCHEDULE)
    busy = set(Job.objects.system().filter(action=action, state__in=ACTIVE_STATES)
               .values_list("environment_id", "queue"))
    launched = []
    for environment, site, narrowed in (site_selectors(selector) if placed is None else placed):
        if (environment.pk, DEFAULT_QUEUE if site is None else site_queue(site)) in busy:
            continue
        try:
            job = launch_adhoc(actor, environment=environment, action=action, values=values or {},
                               selector=narrowed, strategy={"kind": "parallel", "limit": limit},
                               name=f"{name} ({environment.name}{', ' + site if site else ''})",
                               timeout_seconds=timeout_seconds, target_timeout_seconds=target_timeout_seconds,
                               predefined=True)
        except ValidationError as exc:  # no enabled hosts there (any more)
            log.debug("no %s in %s (site %s): %s", action, environment, site, exc)
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
