"""Sliced jobs: one job's targets split over several workers (strategy "slices" / "slice_size").

The job is claimed once (state, leases: runner.claim), which plans its slices (JobSlice rows of
consecutive target indexes) and sends one jobs.run_slice task per slice to the job's queue. Each
slice is taken once (take), run by a JobRunner over its targets with its own EventWriter and
heartbeat, and ended (end_slice); a slice whose worker stopped heartbeating is marked lost by the
reaper (mark_slice_lost: its running targets lost, its pending ones skipped), and the others go on.
The job ends when its last slice does (end_if_done, with the job row locked): one final state,
one error naming what went wrong in which slice.

Lock order, as everywhere in the jobs engine: the job row first, then its slices and targets.
"""
from celery import current_app
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from . import strategy as strategies
from .choices import SLICE_UNFINISHED, TARGET_FAILS_JOB, EventKind, JobState, SliceState, TargetState
from .events import store_now
from .lifecycle import dispatch_soon, transition, worker_actor
from .models import Job, JobSlice, JobTarget

RUN_SLICE_TASK = "jobs.run_slice"
END_SESSIONS_TASK = "jobs.end_lost_sessions"


def is_sliced(job):
    return JobSlice.objects.filter(job=job).exists()


def slice_wire(job_slice):
    """A slice as the job's stream and the API show it."""
    return {"number": job_slice.number, "first": job_slice.first, "last": job_slice.last, "state": job_slice.state,
            "worker": job_slice.worker}


def plan(job, worker):
    """Create the job's slices and send their tasks on commit, when its strategy slices it; call in
    claim's transaction, with the job just moved to running. Returns how many (0: not sliced)."""
    ranges = strategies.plan_slices(job.targets_total or job.targets.count(), job.strategy)
    if not ranges:
        return 0
    created = JobSlice.objects.bulk_create([JobSlice(job=job, number=n, first=first, last=last)
                                            for n, (first, last) in enumerate(ranges, start=1)])
    store_now(job, EventKind.STATE, JobState.RUNNING, data={"state": JobState.RUNNING, "worker": worker})
    store_now(job, EventKind.INFO, f"Sliced into {len(ranges)} slices of {ranges[0][1] - ranges[0][0]} targets "
                                      f"or fewer, each for a worker of queue {job.queue}.")
    ids, queue = [s.pk for s in created], job.queue
    transaction.on_commit(lambda: [current_app.send_task(RUN_SLICE_TASK, (pk,), queue=queue) for pk in ids])
    return len(ranges)


def take(slice_id, worker):
    """Mark a queued slice of a running job as running on this worker; None when it is not to run
    (taken already: a task delivered twice runs its slice once; or its job ended)."""
    with transaction.atomic():
        job_slice = (JobSlice.objects.select_for_update(of=("self",)).select_related("job")
                     .filter(pk=slice_id).first())
        if job_slice is None or job_slice.state != SliceState.QUEUED:
            return None
        if job_slice.job.state != JobState.RUNNING:
            job_slice.state, job_slice.finished = SliceState.DONE, timezone.now()
            job_slice.error = f"not run: the job was {job_slice.job.state} before a worker took the slice"
            job_slice.save()
            return None
        now = timezone.now()
        job_slice.state, job_slice.worker, job_slice.started, job_slice.heartbeat = SliceState.RUNNING, worker, now, now
        job_slice.save()
    return job_slice


def end_slice(job_slice, error="", outcome=""):
    """The slice's runner is done (its writer closed): record it, and end the job when it was the
    last slice. False when the slice had been marked lost meanwhile."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_slice.job_id)
        ended = JobSlice.objects.filter(pk=job_slice.pk, state=SliceState.RUNNING).update(
            state=SliceState.DONE, finished=timezone.now(), error=error[:2000], outcome=outcome)
        if not ended:
            return False
        job_slice.state = SliceState.DONE
        store_now(job, EventKind.INFO, f"Slice {job_slice.number} ended"
                                          f"{': ' + error if error else ''}.", data={"slice": slice_wire(job_slice)})
        end_if_done(job)
    return True


def mark_slice_lost(slice_id, reason, *, only_before=None):
    """A slice whose worker died: its running targets lost, its pending ones skipped, the remote
    sessions it left ended (jobs.lost), the other slices untouched. Returns 1 when marked."""
    job_id = JobSlice.objects.filter(pk=slice_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return 0
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, state=JobState.RUNNING).first()
        job_slice = JobSlice.objects.select_for_update().filter(pk=slice_id, state=SliceState.RUNNING).first()
        if job is None or job_slice is None or (
                only_before is not None and job_slice.heartbeat and job_slice.heartbeat >= only_before):
            return 0
        mine = JobTarget.objects.filter(job=job, index__gte=job_slice.first, index__lt=job_slice.last)
        lost = mine.filter(state=TargetState.RUNNING).update(state=TargetState.LOST, finished=timezone.now())
        mine.filter(state=TargetState.PENDING).update(state=TargetState.SKIPPED)
        job_slice.state, job_slice.finished = SliceState.LOST, timezone.now()
        job_slice.error = f"lost: {reason} (worker {job_slice.worker})"[:2000]
        job_slice.save()
        store_now(job, EventKind.INFO, f"Slice {job_slice.number} lost: {reason} (worker {job_slice.worker}); "
                                          f"{lost} of its targets lost, the rest skipped.",
                  data={"slice": slice_wire(job_slice)})
        left = mine.filter(state=TargetState.LOST).filter(Q(data__has_key="session") | Q(data__has_key="local_run"))
        if lost and left.exists():
            queue, first, last = job.queue, job_slice.first, job_slice.last
            transaction.on_commit(lambda: current_app.send_task(END_SESSIONS_TASK, (job_id, first, last), queue=queue))
        end_if_done(job)
        return 1


def end_if_done(job):
    """With the job row locked: when no slice is queued or running, move the job to its final
    state (timed out, canceled, failed or succeeded) and return it; else None."""
    if job.state != JobState.RUNNING:
        return None
    slices = list(JobSlice.objects.filter(job=job).order_by("number"))
    if any(s.state in SLICE_UNFINISHED for s in slices):
        return None
    states = dict(job.targets.values_list("state").annotate(n=Count("pk")).order_by())
    lost = [s for s in slices if s.state == SliceState.LOST]
    problems = [f"slice {s.number} (targets {s.first + 1}–{s.last}) {s.error}" for s in slices if s.error]
    if any(s.outcome == "timed_out" for s in slices):
        final = JobState.TIMED_OUT
    elif job.cancel_requested or any(s.outcome == "canceled" for s in slices):
        final = JobState.CANCELED
    elif lost or problems or any(states.get(state) for state in TARGET_FAILS_JOB | {TargetState.LOST}):
        final = JobState.FAILED
    else:
        final = JobState.SUCCEEDED
    store_now(job, EventKind.STATE, final, data={"state": final})
    transition(worker_actor(job), job, final, error="; ".join(problems)[:5000])
    transaction.on_commit(dispatch_soon)
    return final


def table(job):
    """The job's slices with their target counts (one query for the counts), for the page and API."""
    slices = list(JobSlice.objects.filter(job=job).order_by("number"))
    if not slices:
        return []
    aggregates = {}
    for s in slices:
        mine = Q(index__gte=s.first, index__lt=s.last)
        aggregates[f"done_{s.number}"] = Count("pk", filter=mine & ~Q(state__in=[TargetState.PENDING,
                                                                                  TargetState.RUNNING]))
        aggregates[f"failed_{s.number}"] = Count("pk", filter=mine & Q(state__in=[
            TargetState.FAILED, TargetState.TIMED_OUT, TargetState.LOST]))
    counts = JobTarget.objects.filter(job=job).aggregate(**aggregates)
    return [{**slice_wire(s), "targets": s.size, "done": counts[f"done_{s.number}"],
             "failed": counts[f"failed_{s.number}"], "state_label": s.get_state_display(), "error": s.error,
             "started": s.started, "finished": s.finished} for s in slices]
