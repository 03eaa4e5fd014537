"""Running a job on a worker: claim it, take leases, run its targets by strategy, finish it.

Threads: the Celery task's thread drives the strategy; a bounded pool runs targets (never one
thread per target); the EventWriter thread does every database write; a supervisor thread
heartbeats, watches for cancel requests and enforces the job timeout.

A sliced job (jobs.slices) runs one JobRunner per slice, each on the worker that took the slice:
over the slice's targets, with its own writer and heartbeat; the failure threshold is the job's,
read from the job's failed count by each slice's supervisor.
"""
import logging
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field

import requests
from celery import current_task
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from ops_portal.core import targets as target_kinds
from ops_portal.core import threads
from schedulers import local
from schedulers.base import BackendError, CancelToken, CommandResult

from . import actions, params, slices
from . import strategy as strategies
from .choices import (
    TARGET_ENDED,
    TARGET_FAILED,
    TARGET_FAILS_JOB,
    TARGET_UNFINISHED,
    TIMED_WAITS,
    EventKind,
    JobState,
    TargetState,
    WaitingKind,
)
from .events import EventWriter
from .gating import plan_still_approved
from .lifecycle import dispatch_soon, stored_params, transition, wait, worker_actor
from .models import Job, JobSlice, JobTarget, Lease
from .windows import active_freeze

log = logging.getLogger(__name__)
SUPERVISE_INTERVAL = 1.0


def worker_name():
    request = getattr(current_task, "request", None)
    return getattr(request, "hostname", None) or socket.gethostname()


# Claiming ----------------------------------------------------------------------------------

@dataclass
class Claim:
    job: Job | None = None
    retry_at: object = None  # a datetime when the job should be tried again
    slices: int = 0  # sliced: its slices were planned and sent to workers (jobs.run_slice)


def claim(job_id, worker):
    """Move a queued job to running if nothing holds it back; otherwise record why it waits."""
    with transaction.atomic():
        job = (Job.objects.select_for_update(of=("self",))
               .select_related("environment", "template", "approval_request").filter(pk=job_id).first())
        if job is None or job.state != JobState.QUEUED:
            return Claim()
        actor = worker_actor(job)
        if job.cancel_requested:
            JobTarget.objects.filter(job=job).update(state=TargetState.CANCELED)
            transition(actor, job, JobState.CANCELED)
            return Claim()
        if not plan_still_approved(actor, job):
            return Claim()
        now = timezone.now()
        if job.not_before and job.not_before > now:
            wait(job, WaitingKind.HELD, f"held until {job.not_before:%Y-%m-%d %H:%M:%S %Z}")
            return Claim(retry_at=job.not_before)
        freeze = active_freeze(job.environment, now)
        if freeze is not None and not job.emergency and not _portal_read_only(job):
            wait(job, WaitingKind.FROZEN, f"frozen until {freeze.ends:%Y-%m-%d %H:%M:%S %Z}: {freeze.reason}")
            return Claim(retry_at=freeze.ends)
        template = job.template
        if template is not None and template.concurrency_limit:
            running = Job.objects.filter(template=template, state=JobState.RUNNING).count()
            if running >= template.concurrency_limit:
                wait(job, WaitingKind.CONCURRENCY, f"waiting: {running} jobs of this template already run (limit "
                           f"{template.concurrency_limit})")
                return Claim()
        spec = actions.get(job.action)
        if spec is not None and spec.mutating:
            blocked = _lease_blocker(job)
            if blocked:
                wait(job, WaitingKind.LEASE, blocked)
                return Claim()
        transition(actor, job, JobState.RUNNING, worker=worker)
        return Claim(job=job, slices=slices.plan(job, worker))


def _portal_read_only(job):
    """The portal's own read-only work (metrics, facts launched by the system): a freeze stops
    changes, not observation, so it does not hold these jobs."""
    spec = actions.get(job.action)
    return job.is_system and spec is not None and not spec.mutating


def _lease_blocker(job):
    """Take the leases of all the job's targets, or say what holds them (first come, first served)."""
    refs = list(job.targets.values_list("kind", "ref_id", "name"))
    keys = {target_kinds.lease_key(kind, ref): name for kind, ref, name in refs}
    # Plain rows, no ordering: a claim is on every job's critical path and this runs in each.
    held = Lease.objects.filter(target_key__in=keys).exclude(job=job).order_by().values_list("target_key", "job_id")[:1]
    for target_key, job_id in held:
        return f"waiting for lease on {keys[target_key]} (held by job #{job_id})"
    # An older queued job that wants the same targets goes first, unless a window or freeze holds it.
    earlier = (JobTarget.objects.filter(job__state=JobState.QUEUED, job__created__lt=job.created,
                                        kind__in={k for k, _, _ in refs}, ref_id__in={r for _, r, _ in refs})
               .exclude(job=job).exclude(job__waiting_kind__in=TIMED_WAITS)
               .order_by().values_list("job_id", "name")[:1])
    earlier = next(iter(earlier), None)
    if earlier is not None:
        return f"waiting for lease on {earlier[1]} (job #{earlier[0]} is ahead)"
    try:
        with transaction.atomic():
            Lease.objects.bulk_create([Lease(target_key=key, job_id=job.pk) for key in keys])
    except IntegrityError:
        return "waiting for lease (taken a moment ago)"
    return ""


# Running -----------------------------------------------------------------------------------

@dataclass
class TargetContext:
    """What an action's run() gets for one target."""

    job: Job
    target: JobTarget
    params: dict
    cancel: CancelToken
    timeout: int | None
    writer: EventWriter
    resources: dict = field(default_factory=dict)
    obj: object = None  # the target's object (of its kind: a Host), loaded before the threads start

    def output(self, stream, line):
        self.writer.output(self.target.index, stream, line)

    def info(self, text):
        self.writer.emit(EventKind.INFO, text, target=self.target.index)

    def after(self, func):
        """Run func() with database access in the writer thread (pin a host key, store facts)."""
        self.writer.call(func)

    def remote_session(self, sid):
        """Note the remote session a command runs in, so it can be ended should this worker die."""
        self.writer.call_batched(store_targets, (self.job.pk, self.target.index, {"data": {"session": sid}}, False,
                                                 False))

    def after_each(self, func, item):
        """func(items) in the writer thread, once for the items of the targets that end close
        together (EventWriter.call_batched), e.g. the hosts reached."""
        self.writer.call_batched(func, item)


class BatchContext:
    """What an action's run_batch() gets: the batch's targets (with their objects), the job's
    parameters, cancel token and writer; finish() stores one target's result (the first one wins),
    so the action reports each target as soon as it knows."""

    def __init__(self, runner, targets):
        self._runner = runner
        self.job, self.params, self.cancel = runner.job, runner.params, runner.cancel
        self.writer, self.resources = runner.writer, runner.resources
        self.timeout = runner.job.target_timeout_seconds
        self.targets = list(targets)
        self.objects = {t.index: runner.objects.get((t.kind, t.ref_id)) for t in self.targets}
        self.limit = runner.job.strategy.get("limit", strategies.DEFAULT_LIMIT)
        self._finished = set()
        self._lock = threading.Lock()

    def output(self, target, stream, line):
        self.writer.output(target.index if target is not None else None, stream, line)

    def info(self, text, target=None):
        self.writer.emit(EventKind.INFO, text, target=target.index if target is not None else None)

    def after(self, func):
        """Run func() with database access in the writer thread."""
        self.writer.call(func)

    def local_run(self, tag):
        """Note the tag (OPSPORTAL_RUN) of the processes the batch starts on this worker's machine,
        so they can be ended should this worker die (jobs.lost). Written before it returns."""
        indexes = [t.index for t in self.targets]
        JobTarget.objects.filter(job_id=self.job.pk, index__in=indexes).update(data={"local_run": tag})

    def finish(self, target, result):
        with self._lock:
            if target.index in self._finished:
                return False
            self._finished.add(target.index)
        self._runner._finish_target(target, result)
        return True


class JobRunner:
    def __init__(self, job, job_slice=None):
        self.job = job
        self.slice = job_slice
        self.spec = actions.get(job.action)
        self.cancel = CancelToken()
        self.stop_reason = ""
        self.failures = 0
        self.lock = threading.Lock()
        self.writer = EventWriter(job)
        self.resources = {}
        targets = job.targets.order_by("index")
        if job_slice is not None:
            targets = targets.filter(index__gte=job_slice.first, index__lt=job_slice.last)
        self.targets = list(targets)
        public, secret = stored_params(job)
        self.params = {**public, **secret}
        # Secret values never reach the job's output, errors or the worker's log, even when a
        # command prints them.
        self.mask = params.masker(secret)
        self.writer.mask = self.mask
        total = len(self.targets) if job_slice is None else job.targets.count()
        self.threshold = strategies.failure_threshold(total, job.strategy)
        self._done = threading.Event()
        self.objects = {}
        if job_slice is not None and job.cancel_requested:
            self.cancel.cancel("canceled")  # canceled before this slice started: start none of its targets
        if job_slice is not None:
            self._job_threshold(job.targets_failed)  # other slices may have failed enough already

    # Supervisor: heartbeat, cancel requests, the job timeout --------------------------------

    def _supervise(self):
        deadline = time.monotonic() + self.job.timeout_seconds
        if self.slice is not None and self.job.started:  # the job's timeout counts from the job's start
            deadline -= (timezone.now() - self.job.started).total_seconds()
        try:
            while not self._done.wait(SUPERVISE_INTERVAL):
                close_old_connections()
                row, failed = Job.objects.filter(pk=self.job.pk).values_list("cancel_requested",
                                                                            "targets_failed").first() or (None, 0)
                if self.slice is None:
                    Job.objects.filter(pk=self.job.pk).update(heartbeat=timezone.now())
                else:
                    JobSlice.objects.filter(pk=self.slice.pk).update(heartbeat=timezone.now())
                    self._job_threshold(failed)
                if row and not self.cancel.is_set():
                    self.cancel.cancel("canceled")
                    self.writer.emit(EventKind.INFO, "Cancel requested: ending the remote processes…")
                if time.monotonic() > deadline and not self.cancel.is_set():
                    self.cancel.cancel("timed_out")
                    self.writer.emit(EventKind.INFO, f"Job timeout of {self.job.timeout_seconds}s reached.")
        finally:
            connection.close()

    def _job_threshold(self, failed):
        """A slice stops its rollout when the whole job's failures (all slices') exceed the threshold."""
        with self.lock:
            if self.threshold is not None and failed > self.threshold and not self.stop_reason:
                self.stop_reason = f"{failed} targets of the job failed (threshold {self.threshold})"

    # Targets --------------------------------------------------------------------------------

    def _set_target(self, target, **fields):
        if fields.get("error"):
            fields["error"] = self.mask(fields["error"])
        for name, value in fields.items():
            setattr(target, name, value)
        index = target.index
        done = fields.get("state") in TARGET_ENDED
        failed = fields.get("state") in TARGET_FAILED
        self.writer.call_batched(store_targets, (self.job.pk, index, fields, done, failed))
        data = {"state": target.state, "exit_code": target.exit_code, "changed": target.changed,
                "error": target.error[:500] if target.error else ""}
        result = fields.get("data") if isinstance(fields.get("data"), dict) else {}
        if result.get("counts"):  # a tool's per-target tally (Ansible's ok/changed/failed/skipped/unreachable)
            data["counts"] = result["counts"]
        if isinstance(result.get("resources"), dict):  # Puppet's resources, for the job page's live grid
            data["resources"] = result["resources"]
            data["revision"] = str(result.get("revision") or "")
        self.writer.emit(EventKind.TARGET, target.name, target=index, data=data)

    def _invoke(self, spec, target):
        """Run one action on one target; an unreachable target or a bug becomes a failed result."""
        if spec.run is None:
            return CommandResult(error=f"{spec.name} runs on a whole batch, not on one target")
        ctx = TargetContext(self.job, target, self.params, self.cancel, self.job.target_timeout_seconds,
                            self.writer, self.resources, self.objects.get((target.kind, target.ref_id)))
        try:
            return spec.run(ctx)
        except BackendError as exc:
            return CommandResult(error=str(exc))
        except Exception as exc:  # a bug in an action fails its target, not the worker
            log.error("action %s failed on %s\n%s", spec.name, target.name, self.mask(traceback.format_exc()))
            return CommandResult(error=f"internal error: {type(exc).__name__}: {exc}")

    def _run_target(self, target):
        if self._skip_if_stopped(target):
            return target.state
        self._set_target(target, state=TargetState.RUNNING, started=timezone.now())
        return self._finish_target(target, self._invoke(self.spec, target))

    def _skip_if_stopped(self, target):
        """A target not started because the job was canceled or the rollout stopped."""
        if not (self.cancel.is_set() or self.stop_reason):
            return False
        state = TargetState.CANCELED if self.cancel.is_set() else TargetState.SKIPPED
        self._set_target(target, state=state, finished=timezone.now())
        return True

    def _finish_target(self, target, result):
        """Store how a target ended and count it against the failure threshold."""
        if result.canceled:
            state = TargetState.TIMED_OUT if self.cancel.reason == "timed_out" else TargetState.CANCELED
        elif result.timed_out:
            state = TargetState.TIMED_OUT
        elif result.ok:
            state = TargetState.OK
        else:
            state = TargetState.FAILED
        self._set_target(target, state=state, exit_code=result.exit_code, changed=result.changed,
                         error=result.error, finished=timezone.now(), data=result.data or None)
        if state in TARGET_FAILED:
            with self.lock:
                self.failures += 1
                if self.threshold is not None and self.failures > self.threshold and not self.stop_reason:
                    self.stop_reason = f"{self.failures} targets failed (threshold {self.threshold})"
        return state

    def _run_batch(self, indexes):
        if self.spec.run_batch is not None:
            return self._run_batch_at_once(indexes)
        limit = min(self.job.strategy.get("limit", strategies.DEFAULT_LIMIT), len(indexes))
        # On the threads this worker process kept from its earlier jobs (core.threads).
        return threads.run_bounded(lambda i: self._run_target(self.targets[i]), indexes, limit,
                                   name=f"job-{self.job.pk}")

    def _run_batch_at_once(self, indexes):
        """An action that acts on the whole batch in one go (spec.run_batch): its targets start
        together, the action reports each as it ends; one it did not report fails with the
        action's error (or is canceled)."""
        started = []
        for index in indexes:
            target = self.targets[index]
            if not self._skip_if_stopped(target):
                self._set_target(target, state=TargetState.RUNNING, started=timezone.now())
                started.append(target)
        if not started:
            return []
        batch = BatchContext(self, started)
        error = "the action ended without a result for this target"
        try:
            self.spec.run_batch(batch)
        except BackendError as exc:
            error = str(exc)
        except Exception as exc:  # a bug in an action fails its targets, not the worker
            log.error("action %s failed on a batch\n%s", self.spec.name, self.mask(traceback.format_exc()))
            error = f"internal error: {type(exc).__name__}: {exc}"
        for target in started:
            batch.finish(target, CommandResult(error=error, canceled=self.cancel.is_set()))
        return [target.state for target in started]

    # Between batches ------------------------------------------------------------------------

    def _health_gate(self, gate):
        for attempt in range(1, gate["retries"] + 1):
            if self.cancel.is_set():
                return False
            if gate["type"] == "http":
                try:
                    response = requests.get(gate["url"], timeout=gate["timeout"])
                    ok, detail = 200 <= response.status_code < 300, f"HTTP {response.status_code}"
                except requests.RequestException as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
            else:
                result = local.run(["sh", "-c", gate["command"]], timeout=gate["timeout"], cancel=self.cancel,
                                   on_line=lambda stream, line: self.writer.emit(EventKind.INFO, f"gate: {line}"))
                ok, detail = result.ok, f"exit {result.exit_code}" if not result.error else result.error
            self.writer.emit(EventKind.INFO, f"Health gate attempt {attempt}: {'passed' if ok else 'failed'} "
                                             f"({detail})")
            if ok:
                return True
            self.cancel.wait(gate["interval"])
        return False

    def _rollback(self):
        spec = actions.get(self.job.strategy.get("rollback_action") or "")
        if spec is None:
            return
        done = [t for t in self.targets if t.state == TargetState.OK]
        self.writer.emit(EventKind.INFO, f"Rolling back {len(done)} targets with {spec.name}.")
        for target in done:
            result = self._invoke(spec, target)
            if result.ok:
                self._set_target(target, state=TargetState.ROLLED_BACK)
            else:
                self.writer.emit(EventKind.INFO, f"Rollback failed on {target.name}: {result.error}",
                                 target=target.index)

    # The whole job -------------------------------------------------------------------------

    def run(self):
        threads.cache.spawn(self._supervise, name=f"job-{self.job.pk}-supervisor")
        error = ""
        try:
            self.objects = load_objects(self.targets)
            if self.spec.prepare is not None:
                self.spec.prepare(self)
            if self.slice is None:
                self.writer.emit(EventKind.STATE, "running", data={"state": JobState.RUNNING,
                                                                    "worker": self.job.worker})
            else:
                self.writer.emit(EventKind.INFO, f"Slice {self.slice.number}: targets {self.slice.first + 1}–"
                                                 f"{self.slice.last} on {self.slice.worker}.",
                                 data={"slice": slices.slice_wire(self.slice)})
            batches = strategies.batches(len(self.targets), self.job.strategy)
            gate = self.job.strategy.get("health_gate")
            pause = self.job.strategy.get("pause_seconds", 0)
            for number, indexes in enumerate(batches):
                if len(batches) > 1:
                    self.writer.emit(EventKind.INFO, f"Batch {number + 1} of {len(batches)}: {len(indexes)} targets.")
                self._run_batch(indexes)
                last = number == len(batches) - 1
                if self.cancel.is_set() or self.stop_reason or last:
                    continue
                if gate and not self._health_gate(gate):
                    self.stop_reason = "the health gate failed"
                    continue
                if pause:
                    self.writer.emit(EventKind.INFO, f"Pausing {pause}s before the next batch.")
                    self.cancel.wait(pause)
            if self.stop_reason and not self.cancel.is_set():
                self.writer.emit(EventKind.INFO, f"Rollout stopped: {self.stop_reason}.")
                self._rollback()
        except Exception as exc:
            log.error("job %s failed in the runner\n%s", self.job.pk, self.mask(traceback.format_exc()))
            error = self.mask(f"runner error: {type(exc).__name__}: {exc}")
            for target in self.targets:
                if target.state in TARGET_UNFINISHED:
                    self._set_target(target, state=TargetState.FAILED, error=error)
        finally:
            self._done.set()
            close_resources(self.resources)
        self.finish(error)

    def finish(self, error=""):
        if self.slice is not None:
            return self._finish_slice(error)
        if self.cancel.reason == "timed_out":
            final = JobState.TIMED_OUT
        elif self.cancel.is_set():
            final = JobState.CANCELED
        elif error or self.stop_reason or any(t.state in TARGET_FAILS_JOB for t in self.targets):
            final = JobState.FAILED
        else:
            final = JobState.SUCCEEDED
        self.writer.emit(EventKind.STATE, final, data={"state": final})
        writer_error = None
        try:
            self.writer.close()
        except RuntimeError as exc:
            writer_error = exc
            final = JobState.FAILED
        close_old_connections()
        message = error or (f"Rollout stopped: {self.stop_reason}" if self.stop_reason else "")
        if writer_error is not None:
            message = f"storing output failed: {writer_error.__cause__}"
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=self.job.pk)
            if job.state == JobState.RUNNING:
                transition(worker_actor(job), job, final, error=message)
        transaction.on_commit(dispatch_soon)
        return final


    def _finish_slice(self, error):
        """Store the slice's last events, then end the slice (and the job, if it was the last)."""
        outcome = self.cancel.reason if self.cancel.reason in ("timed_out", "canceled") else ""
        message = error or (f"rollout stopped: {self.stop_reason}" if self.stop_reason else "")
        try:
            self.writer.close()
        except RuntimeError as exc:
            message = f"storing output failed: {exc.__cause__}"
        close_old_connections()
        slices.end_slice(self.slice, message, outcome)
        return outcome or ("failed" if message else "done")


def store_targets(items):
    """Store targets' changes, (job_id, index, fields, ended, failed) queued through the writer
    (call_batched), and count the ended ones on their job: a target's changes in one flush are
    merged (later fields win) and targets with the same changed fields share one UPDATE, so a
    flush of N targets costs a few statements rather than 2-3 per target."""
    changes, counts = {}, {}
    for job_id, index, fields, ended, failed in items:
        changes[(job_id, index)] = {**changes.get((job_id, index), {}), **fields}
        if ended:
            done_before, failed_before = counts.get(job_id, (0, 0))
            counts[job_id] = (done_before + 1, failed_before + int(failed))
    groups = {}
    for (job_id, index), fields in changes.items():
        groups.setdefault((job_id, tuple(sorted(fields))), []).append((index, fields))
    for (job_id, names), rows in groups.items():
        _update_targets(job_id, names, rows)
    for job_id, (done, failed) in counts.items():
        Job.objects.filter(pk=job_id).update(targets_done=F("targets_done") + done,
                                             targets_failed=F("targets_failed") + failed)


_LENGTH = re.compile(r"\(\d+\)")


def _update_targets(job_id, names, rows):
    """Set the fields `names` of the job's targets, rows [(index, {name: value})]: on PostgreSQL
    one UPDATE ... FROM (VALUES ...) for all rows (the ORM's update() per row costs ~0.3 ms of
    CPU in the writer thread)."""
    if len(rows) == 1 or connection.vendor != "postgresql":
        for index, fields in rows:
            JobTarget.objects.filter(job_id=job_id, index=index).update(**fields)
        return
    qn = connection.ops.quote_name
    model_fields = [JobTarget._meta.get_field(name) for name in names]
    # Casts without a length: a too long value fails as the ORM's update would, not cut short.
    row = "(%s::integer, " + ", ".join(f"%s::{_LENGTH.sub('', f.db_type(connection))}" for f in model_fields) + ")"
    params = []
    for index, fields in rows:
        params.append(index)
        params.extend(f.get_db_prep_save(fields[f.name], connection) for f in model_fields)
    columns = ", ".join(qn(f.column) for f in model_fields)
    sets = ", ".join(f"{qn(f.column)} = v.{qn(f.column)}" for f in model_fields)
    index = qn("index")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(JobTarget._meta.db_table)} AS t SET {sets} "
                       f"FROM (VALUES {', '.join([row] * len(rows))}) AS v({index}, {columns}) "
                       f"WHERE t.{qn('job_id')} = %s AND t.{index} = v.{index}", [*params, job_id])


def load_objects(targets):
    """{(kind, ref_id): object} behind the targets, through their kinds, loaded once in the task thread."""
    return target_kinds.load([(t.kind, t.ref_id) for t in targets])


def close_resources(resources):
    for resource in resources.values():
        closer = getattr(resource, "close", None)
        if callable(closer):
            try:
                closer()
            except Exception:
                log.warning("closing a job resource failed", exc_info=True)

