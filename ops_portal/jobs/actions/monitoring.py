"""Metrics collection as a job, so it shows in the same history, audit and live views.

The host.metrics action samples load, CPU, memory and disks (schedulers' collect_metrics, or the
same probe run locally for the portal's own machine) and stores them with reachability 1; a host
that cannot be reached fails its target and is stored with reachability 0. Samples are written in
batches by the job's writer thread; when the job ends, its environment's alert rules are evaluated.

The built-in schedule "monitoring: collect metrics" (jobs/periodic_tasks.py) launches one system
job per environment every minute; "retention: metrics jobs" removes those jobs after a few days
(they are many: one a minute per environment, one target row per host).
"""
import json
import logging
import threading
import time
from datetime import timedelta

from celery import shared_task
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.monitoring import metrics as monitoring
from ops_portal.monitoring import tasks as monitoring_tasks
from schedulers import host as ssh
from schedulers import local
from schedulers.base import BackendError, CommandResult

from . import ActionSpec, register
from .host import local_env, prepare_ssh, with_host

log = logging.getLogger(__name__)
ACTION = "host.metrics"
FLUSH_ROWS = 2000  # samples per insert: about 250 hosts with a few mounts each


class MetricsSink:
    """A job's samples on their way to the database: buffered across targets and written in
    batches by the writer thread; closing it writes the rest and asks for alert evaluation."""

    def __init__(self, runner):
        self.writer = runner.writer
        self.environment_id = runner.job.environment_id
        self.lock = threading.Lock()
        self.pending, self.rows = [], 0
        self.series = {}  # series ids, used only in the writer thread

    def add(self, ctx, host_id, at, rows):
        with self.lock:
            self.pending.append((host_id, at, rows))
            self.rows += len(rows)
            if self.rows < FLUSH_ROWS:
                return
            batch, self.pending, self.rows = self.pending, [], 0
        ctx.after(lambda: monitoring.store(batch, series_cache=self.series))

    def close(self):
        """Called by the runner once every target is done (before the writer stops)."""
        with self.lock:
            batch, self.pending, self.rows = self.pending, [], 0
        environment_id, series = self.environment_id, self.series

        def finish():
            if batch:
                monitoring.store(batch, series_cache=series)
            try:
                monitoring_tasks.evaluate.delay(environment_id, Source.WORKER)
            except Exception:  # the 30-second schedule evaluates anyway
                log.warning("could not queue alert evaluation for environment %s", environment_id, exc_info=True)

        self.writer.call(finish)


def prepare_metrics(runner):
    prepare_ssh(runner)
    runner.resources["metrics"] = MetricsSink(runner)


def _probe_locally(ctx, host):
    from schedulers.hostlib.probes import probe_source

    lines = []
    result = local.run(["python3", "-c", probe_source(), "metrics"], on_line=lambda s, line: lines.append((s, line)),
                       cancel=ctx.cancel, timeout=60, env=local_env(ctx))
    stdout = [line for stream, line in lines if stream == "stdout"]
    if not result.ok:
        detail = result.error or f"exit {result.exit_code}: {' '.join(line for _, line in lines[-3:])}"
        raise BackendError(f"metrics on {host.name} failed: {detail}")
    try:
        return json.loads(stdout[-1])
    except (IndexError, ValueError):
        raise BackendError(f"metrics on {host.name} returned no JSON")


def _describe(values):
    def show(name, unit=""):
        value = values.get(name)
        return f"{value:g}{unit}" if isinstance(value, (int, float)) else "?"

    disks = ", ".join(f"{mount} {percent:g}%" for mount, percent in sorted((values.get("disks") or {}).items()))
    return f"cpu {show('cpu_percent', '%')}, memory {show('mem_percent', '%')}, load {show('load1')}; disks: {disks}"


def collect(ctx):
    sink, host = ctx.resources["metrics"], ctx.obj
    try:
        values = with_host(ctx, lambda h: _probe_locally(ctx, h),
                           lambda pool, target: ssh.collect_metrics(pool, target, cancel=ctx.cancel))
    except BackendError:
        if host is not None and not ctx.cancel.is_set():
            sink.add(ctx, host.pk, int(time.time()), monitoring.unreachable_rows())
        raise
    rows = monitoring.probe_rows(values)
    sink.add(ctx, host.pk, int(time.time()), rows)
    ctx.output("stdout", _describe(values))
    return CommandResult(exit_code=0, changed=False, data={"samples": len(rows)})


register(ActionSpec(
    name=ACTION, label="Collect metrics", target_kind="host", prepare=prepare_metrics, mutating=False,
    description="Sample load, CPU, memory and disk usage per mount, and reachability, into the metrics store.",
    parameters=[], run=collect,
))


# Built-in periodic work --------------------------------------------------------------------

@shared_task(name="monitoring.collect_metrics", ignore_result=True)
def collect_metrics(parallel=50, timeout_seconds=300):
    """Launch one metrics job per environment with enabled hosts, unless its previous one is
    still queued or running (collection never piles up behind a slow fleet)."""
    from ops_portal.accounts.models import Environment
    from ops_portal.inventory.models import Host

    from .. import services
    from ..choices import ACTIVE_STATES
    from ..models import Job

    actor = Actor.system(Source.SCHEDULE)
    busy = set(Job.objects.filter(action=ACTION, created_by__isnull=True, state__in=ACTIVE_STATES)
               .values_list("environment_id", flat=True))
    wanted = Host.objects.filter(enabled=True).exclude(environment_id__in=busy).values("environment_id")
    launched = []
    for environment in Environment.objects.filter(pk__in=wanted).order_by("name"):
        try:
            job = services.launch_adhoc(
                actor, environment=environment, action=ACTION, values={}, selector={"all": True},
                strategy={"kind": "parallel", "limit": parallel}, name=f"Collect metrics ({environment.name})",
                timeout_seconds=timeout_seconds, target_timeout_seconds=120, predefined=True)
        except (ValidationError, PermissionDenied) as exc:  # hosts went away meanwhile
            log.info("no metrics job in %s: %s", environment, exc)
            continue
        launched.append(job.pk)
    return launched


@shared_task(name="monitoring.prune_jobs", ignore_result=True)
def prune_metrics_jobs(days=3):
    """Remove system metrics jobs (with their targets and output) that ended more than `days` ago;
    the samples they stored and their audit rows stay."""
    from ..models import Job

    cutoff = timezone.now() - timedelta(days=days)
    old = Job.objects.filter(action=ACTION, created_by__isnull=True, created_by_name="", finished__lt=cutoff)
    removed = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:1000])
        if not ids:
            return removed
        Job.objects.filter(pk__in=ids).delete()
        removed += len(ids)

