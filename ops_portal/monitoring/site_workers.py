"""Alerts for sites whose jobs wait with no worker: a job routed to queue `site.<name>` waits
(queued, never lost or failed) until a worker takes that queue, and so does a slice of a running
sliced job; meanwhile an alert per site and environment says so, and it resolves once a worker for
the site is alive or nothing waits.
"""
from collections import Counter

from django.db.models import Count

from ops_portal.core import heartbeat
from ops_portal.inventory.models import SITE_QUEUE_PREFIX, site_of_queue
from ops_portal.jobs.choices import JobState, SliceState
from ops_portal.jobs.models import Job

from . import services
from .choices import OPEN_STATES
from .models import Alert

SOURCE = "site_workers"
SEVERITY = "warning"


def key(site, environment_id):
    return f"site:{site}:environment:{environment_id}"


def summary(site, waiting):
    return (f"No worker for site {site}: {waiting} job{'s' if waiting != 1 else ''} waiting on queue "
            f"{SITE_QUEUE_PREFIX}{site}. Start a worker near the site with -Q {SITE_QUEUE_PREFIX}{site}.")


def check():
    """Raise an alert for each (site, environment) with queued jobs and no live worker on the
    site's queue; resolve the others. Returns the keys alerted now."""
    waiting = Counter()
    queued = (Job.objects.filter(state=JobState.QUEUED, queue__startswith=SITE_QUEUE_PREFIX)
              .values_list("queue", "environment_id").annotate(n=Count("pk")).order_by())
    sliced = (Job.objects.filter(state=JobState.RUNNING, queue__startswith=SITE_QUEUE_PREFIX,
                                 slices__state=SliceState.QUEUED)
              .values_list("queue", "environment_id").annotate(n=Count("pk", distinct=True)).order_by())
    for queue, environment_id, count in [*queued, *sliced]:
        waiting[queue, environment_id] += count
    staffed = {}
    alerted = set()
    for (queue, environment_id), count in waiting.items():
        if queue not in staffed:
            staffed[queue] = bool(heartbeat.takers(queue))
        if staffed[queue]:
            continue
        site = site_of_queue(queue)
        services.raise_external(SOURCE, key(site, environment_id), environment=environment_id, severity=SEVERITY,
                                summary=summary(site, count))
        alerted.add(key(site, environment_id))
    for open_key in Alert.objects.filter(source=SOURCE, state__in=OPEN_STATES).values_list("key", flat=True):
        if open_key not in alerted:
            services.resolve_external(SOURCE, open_key, resolution="a worker takes the site's queue, or no job "
                                                                   "waits for one any more")
    return sorted(alerted)
