"""Metrics collection as a job, so it shows in the same history, audit and live views.

The host.metrics action samples load, CPU, memory and disks (schedulers' collect_metrics, or the
same probe run locally for the portal's own machine) and stores them with reachability 1; a host
that cannot be reached fails its target and is stored with reachability 0. Samples are written in
batches by the job's writer thread; when the job ends, its environment's alert rules are evaluated.

The built-in schedule "monitoring: collect metrics" (periodic_tasks.py) launches one system job
per environment every minute (tasks.collect_metrics); "retention: metrics jobs" removes those jobs
after a few days (they are many: one a minute per environment, one target row per host).
"""
import logging
import threading
import time

from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.jobs.job_actions import HOST, job_env, prepare_ssh, with_host
from schedulers.base import BackendError, CommandResult

from . import metrics as monitoring
from .choices import COLLECT_ACTION as ACTION
from .tasks import queue_evaluation

log = logging.getLogger(__name__)
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
            queue_evaluation(environment_id)

        self.writer.call(finish)


def prepare_metrics(runner):
    prepare_ssh(runner)
    runner.resources["metrics"] = MetricsSink(runner)


def _describe(values):
    def show(name, unit=""):
        value = values.get(name)
        return f"{value:g}{unit}" if isinstance(value, (int, float)) else "?"

    disks = ", ".join(f"{mount} {percent:g}%" for mount, percent in sorted((values.get("disks") or {}).items()))
    return f"cpu {show('cpu_percent', '%')}, memory {show('mem_percent', '%')}, load {show('load1')}; disks: {disks}"


def collect(ctx):
    sink, host = ctx.resources["metrics"], ctx.obj
    try:
        values = with_host(ctx, lambda session, target: HOST.probe(session, target, "metrics", cancel=ctx.cancel,
                                                                   env=job_env(ctx)))
    except BackendError:
        if host is not None and not ctx.cancel.is_set():
            sink.add(ctx, host.pk, int(time.time()), monitoring.unreachable_rows())
        raise
    rows = monitoring.probe_rows(values)
    sink.add(ctx, host.pk, int(time.time()), rows)
    ctx.output("stdout", _describe(values))
    return CommandResult(exit_code=0, changed=False, data={"samples": len(rows)})


register(ActionSpec(
    name=ACTION, label="Collect metrics", target_kind=HOSTS.name, prepare=prepare_metrics, mutating=False,
    description="Sample load, CPU, memory and disk usage per mount, and reachability, into the metrics store.",
    parameters=[], run=collect,
))
