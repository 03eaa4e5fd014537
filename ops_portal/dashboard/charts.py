"""Fleet-wide and per-environment charts of the dashboard, from a few aggregate queries.

Every query groups by a time bucket (and a metric, state or severity), so its answer has at most
(range ÷ bucket) × categories rows, however many hosts, jobs or alerts there are: CPU, memory and
disk as the average and the maximum over the hosts' series per bucket (the per-environment rows
the rollup task writes beside each 5-minute and hourly rollup: 5-minute ones for 6 h and 24 h,
hourly ones for 7 d; up to the rollup watermark); people's jobs by
state per hour of their creation; their durations (average and longest) per hour they ended;
alerts fired per hour by severity. Container series (mount "ctr:…") are left out of the hosts'.

The answer is cached for a minute per set of environments and range (the charts move by the
minute at most; a dashboard opened by many people computes it once): the key names the
environment ids, so two users share an answer only when they may view the same environments.
"""
import logging
import time
from datetime import UTC, datetime

from django.core.cache import cache
from django.db.models import Avg, Count, F, Max, Sum
from django.db.models.functions import Trunc

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import Job
from ops_portal.monitoring.choices import FIVE_MINUTES, HOURLY, Metric, Severity
from ops_portal.monitoring.metrics import watermark
from ops_portal.monitoring.models import Alert, EnvironmentRollup

RANGES = {"6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
DEFAULT_RANGE = "24h"
METRICS = [Metric.CPU_PERCENT, Metric.MEM_PERCENT, Metric.DISK_PERCENT]
HOUR = 3600
CACHE_SECONDS = 60

log = logging.getLogger(__name__)


def environments(user):
    return restrict(Environment.objects.all(), user, Action.VIEW).order_by("name")


def _seconds(moment):
    return int(moment.timestamp())


def _metric_rows(env_ids, since, until, step):
    """{metric: {bucket: (avg, max)}} from the per-environment rollups: one row per environment,
    metric and bucket, so the read is bounded by buckets, not by hosts. The charts end at the
    rollup watermark (2–7 minutes behind, plus the task's period): the raw samples after it would
    be a read of every host's last minutes (0.5–1 s at 10,000 hosts), which a host's own chart
    still makes (metrics.read)."""
    mark = max(since, min(until, watermark(step)))
    rolled = (EnvironmentRollup.objects.filter(environment_id__in=env_ids, metric__in=METRICS, step=step,
                                               time__gte=since, time__lt=mark)
              .values("metric", "time").annotate(t=Sum("total"), n=Sum("series"), m=Max("max"))
              .values_list("metric", "time", "t", "n", "m").order_by())
    out = {metric: {} for metric in METRICS}
    for metric, at, total, n, top in rolled:
        out[metric][at] = (round(total / n, 2), round(top, 2))
    return out


def _series(buckets, names):
    """{"times": [...], name: [...]} from {bucket: {name: value}} (absent values are 0)."""
    times = sorted(buckets)
    return {"times": times, **{name: [buckets[t].get(name, 0) for t in times] for name in names}}


def fleet(user, *, environment=None, range_key=DEFAULT_RANGE, now=None):
    """The dashboard's chart data for the environments the user may view (or one of them),
    cached for CACHE_SECONDS (not when `now` is given: tests and callers asking for a moment)."""
    range_key = range_key if range_key in RANGES else DEFAULT_RANGE
    env_ids = sorted(environments(user).filter(**({"name": environment} if environment else {}))
                     .values_list("pk", flat=True))
    if now is not None:
        return _compute(env_ids, range_key, int(now))
    key = f"dashboard:fleet:{range_key}:{','.join(map(str, env_ids))}"
    try:
        cached = cache.get(key)
    except Exception:  # Redis down: the dashboard still draws, computed each time
        log.warning("fleet charts: the cache does not answer", exc_info=True)
        return _compute(env_ids, range_key, int(time.time()))
    if cached is None:
        cached = _compute(env_ids, range_key, int(time.time()))
        try:
            cache.set(key, cached, CACHE_SECONDS)
        except Exception:
            log.warning("fleet charts: the cache does not answer", exc_info=True)
    return cached


def _compute(env_ids, range_key, until):
    seconds = RANGES[range_key]
    since = until - seconds
    step = FIVE_MINUTES if seconds <= 86400 else HOURLY
    start = datetime.fromtimestamp(since, UTC)

    metrics = _metric_rows(env_ids, since, until, step)
    charts = {"since": since, "until": until, "step": step, "metrics": {}}
    for metric in METRICS:
        rows = metrics[metric]
        times = sorted(rows)
        charts["metrics"][metric] = {"label": Metric(metric).label, "times": times,
                                     "avg": [rows[t][0] for t in times], "max": [rows[t][1] for t in times]}

    jobs = Job.objects.by_people().filter(environment_id__in=env_ids)
    by_state = {}
    for bucket, state, n in (jobs.filter(created__gte=start).annotate(b=Trunc("created", "hour"))
                             .values("b", "state").annotate(n=Count("pk")).values_list("b", "state", "n").order_by()):
        by_state.setdefault(_seconds(bucket), {})[state] = n
    states = [s for s in JobState.values if any(s in row for row in by_state.values())]
    charts["jobs"] = {**_series(by_state, states), "states": states,
                      "labels": {s: JobState(s).label for s in states}}

    durations = {}
    for bucket, avg, longest in (jobs.filter(finished__gte=start, started__isnull=False)
                                 .annotate(b=Trunc("finished", "hour"), d=F("finished") - F("started"))
                                 .values("b").annotate(a=Avg("d"), m=Max("d")).values_list("b", "a", "m").order_by()):
        durations[_seconds(bucket)] = {"avg": round(avg.total_seconds(), 1), "max": round(longest.total_seconds(), 1)}
    charts["durations"] = _series(durations, ["avg", "max"])

    alerts = {}
    for bucket, severity, n in (Alert.objects.filter(environment_id__in=env_ids, fired_at__gte=start)
                                .annotate(b=Trunc("fired_at", "hour")).values("b", "severity").annotate(n=Count("pk"))
                                .values_list("b", "severity", "n").order_by()):
        alerts.setdefault(_seconds(bucket), {})[severity] = n
    charts["alerts"] = _series(alerts, Severity.values)
    return charts
