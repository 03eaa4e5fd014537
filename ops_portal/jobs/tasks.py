"""Celery tasks of the jobs engine: run a job, dispatch waiting jobs, reap lost ones, fire
schedules, the portal's own periodic jobs and retention. The top of the jobs layers: nothing in
jobs imports this module (jobs are sent to workers by task name, see lifecycle)."""
import logging
from datetime import timedelta

from celery import shared_task, signals
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import lost, slices
from .choices import RETRIED_WAITS, JobState, SliceState, TargetState, WaitingKind
from .lifecycle import DISPATCH_TASK, RUN_TASK, dispatch_soon, transition, worker_actor
from .models import Job, JobEvent, JobSlice, JobTarget
from .runner import JobRunner, claim, worker_name
from .schedules import fire
from .system import launch_everywhere

log = logging.getLogger(__name__)
# A running job whose heartbeat is older than this is lost (its worker died or hangs).
LOST_AFTER = timedelta(seconds=getattr(settings, "JOB_LOST_AFTER_SECONDS", 60))
# A queued job with no message in flight for this long is enqueued again.
REQUEUE_AFTER = timedelta(minutes=2)


# The job enforces its own timeout; the task limit is only a backstop beyond the longest allowed job.
@shared_task(name=RUN_TASK, acks_late=True, ignore_result=True, soft_time_limit=8 * 86400,
             time_limit=8 * 86400 + 60)
def run_job(job_id):
    """Claim and run one job. Safe to deliver twice: only a queued job is claimed."""
    outcome = claim(job_id, worker_name())
    if outcome.retry_at is not None:
        run_job.apply_async((job_id,), eta=outcome.retry_at)
    if outcome.job is not None and not outcome.slices:
        JobRunner(outcome.job).run()


@shared_task(name=slices.RUN_SLICE_TASK, acks_late=True, ignore_result=True, soft_time_limit=8 * 86400,
             time_limit=8 * 86400 + 60)
def run_slice(slice_id):
    """Run one slice of a sliced job. Safe to deliver twice: only a queued slice is taken."""
    job_slice = slices.take(slice_id, worker_name())
    if job_slice is not None:
        JobRunner(job_slice.job, job_slice).run()


@shared_task(name=DISPATCH_TASK, ignore_result=True)
def dispatch_waiting():
    """Give queued jobs that wait (for a lease, a concurrency slot) or lost their message a new try,
    and so the queued slices of running jobs."""
    now = timezone.now()
    waiting = Job.objects.filter(state=JobState.QUEUED, waiting_kind__in=RETRIED_WAITS)
    stale = Job.objects.filter(state=JobState.QUEUED, waiting_kind=WaitingKind.NONE, queued_at__lt=now - REQUEUE_AFTER)
    count = 0
    for job_id, queue in (waiting | stale).order_by("created").values_list("pk", "queue")[:1000]:
        run_job.apply_async((job_id,), queue=queue)
        count += 1
    # Slices of running jobs still queued long after the claim sent them: their message may be
    # lost (a broker restart); a second one is harmless (a slice is taken once).
    unclaimed = JobSlice.objects.filter(state=SliceState.QUEUED, job__state=JobState.RUNNING,
                                        job__started__lt=now - REQUEUE_AFTER)
    for slice_id, queue in unclaimed.order_by("job_id", "number").values_list("pk", "job__queue")[:1000]:
        run_slice.apply_async((slice_id,), queue=queue)
        count += 1
    return count


@shared_task(name="jobs.reap_lost", ignore_result=True)
def reap_lost_jobs():
    """Mark running jobs whose heartbeat stopped as lost, keeping each target's last state; of a
    sliced job, the slices whose heartbeat stopped (the job goes on with its other slices)."""
    cutoff = timezone.now() - LOST_AFTER
    reaped = 0
    for job_id in (Job.objects.filter(state=JobState.RUNNING, heartbeat__lt=cutoff, slices__isnull=True)
                   .values_list("pk", flat=True)):
        reaped += mark_lost(job_id, f"no heartbeat from worker since {cutoff:%H:%M:%S}", only_before=cutoff)
    stopped = JobSlice.objects.filter(state=SliceState.RUNNING, heartbeat__lt=cutoff)
    for slice_id in stopped.values_list("pk", flat=True):
        reaped += slices.mark_slice_lost(slice_id, f"no heartbeat from its worker since {cutoff:%H:%M:%S}",
                                         only_before=cutoff)
    return reaped


def mark_lost(job_id, reason, *, only_before=None):
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, state=JobState.RUNNING).first()
        if job is None or (only_before is not None and job.heartbeat and job.heartbeat >= only_before):
            return 0
        JobTarget.objects.filter(job=job, state=TargetState.RUNNING).update(state=TargetState.LOST)
        JobTarget.objects.filter(job=job, state=TargetState.PENDING).update(state=TargetState.SKIPPED)
        transition(worker_actor(job), job, JobState.LOST, error=f"Lost: {reason}. Worker: {job.worker}")
        transaction.on_commit(dispatch_soon)
        lost_targets = JobTarget.objects.filter(job=job, state=TargetState.LOST)
        if lost_targets.filter(data__has_key="session").exists() or \
                lost_targets.filter(data__has_key="local_run").exists():
            # On the job's own queue: its workers are the ones that reach its hosts (and, for a
            # local run such as ansible-playbook, most likely the dead worker's machine).
            queue = job.queue
            transaction.on_commit(lambda: end_lost_sessions.apply_async((job_id,), queue=queue))
        return 1


@shared_task(name="jobs.end_lost_sessions", ignore_result=True)
def end_lost_sessions(job_id, first=None, last=None):
    """End the remote commands a lost job's (or slice's: targets first..last-1) worker left running
    (see jobs.lost)."""
    return lost.end_lost_sessions(job_id, first, last)


@signals.worker_ready.connect
def _reap_own_jobs_on_start(sender, **kwargs):
    """Jobs this worker ran before it restarted cannot still be running: they are lost now."""
    try:
        for job_id in (Job.objects.filter(state=JobState.RUNNING, worker=sender.hostname, slices__isnull=True)
                       .values_list("pk", flat=True)):
            mark_lost(job_id, "the worker restarted")
        for slice_id in (JobSlice.objects.filter(state=SliceState.RUNNING, worker=sender.hostname)
                         .values_list("pk", flat=True)):
            slices.mark_slice_lost(slice_id, "its worker restarted")
    except Exception:  # the database may be briefly away at start; the reaper catches up
        log.warning("could not reap this worker's earlier jobs", exc_info=True)


@shared_task(name="jobs.run_schedule", ignore_result=True)
def run_schedule(schedule_id):
    """Fired by beat for a JobSchedule; safe against double firing (one run per slot)."""
    run = fire(schedule_id)
    return run.outcome if run else "duplicate"


@shared_task(name="jobs.prune_events", ignore_result=True)
def prune_job_events(days=90):
    """Retention: remove output of jobs that finished more than `days` ago (the jobs stay)."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = JobEvent.objects.filter(job__finished__lt=cutoff).delete()
    return deleted


@shared_task(name="jobs.refresh_facts", ignore_result=True)
def refresh_facts():
    """Inventory refresh: gather facts from every enabled host (one job per environment)."""
    return launch_everywhere("host.facts", name="Inventory refresh")


@shared_task(name="jobs.compliance_checks", ignore_result=True)
def compliance_checks():
    """Security and compliance checks on every enabled host (one job per environment)."""
    return launch_everywhere("host.compliance", name="Compliance checks")
