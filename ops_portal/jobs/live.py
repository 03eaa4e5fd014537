"""What a job's page shows that changes while it is open: its target counts and why it waits.

The job page renders these once and again as a fragment each time a stream says the job changed
(jobs.views.job_live), so a reload and a live update never disagree.
"""
from django.db.models import Count
from django.utils import timezone
from redis.exceptions import RedisError

from ops_portal.core import heartbeat
from ops_portal.inventory.models import site_of_queue

from .choices import JobState, SliceState, TargetState, WaitingKind
from .models import JobSlice, JobTarget

# (key, label, the target states it counts), in the order the page shows them. Canceled, skipped
# and lost targets ended without doing their work: they are not "done".
COUNTED = [
    ("ok", "ok", {TargetState.OK}),
    ("failed", "failed", {TargetState.FAILED, TargetState.TIMED_OUT, TargetState.ROLLED_BACK}),
    ("canceled", "canceled", {TargetState.CANCELED}),
    ("skipped", "skipped", {TargetState.SKIPPED}),
    ("lost", "lost", {TargetState.LOST}),
    ("running", "running", {TargetState.RUNNING}),
    ("pending", "pending", {TargetState.PENDING}),
]
ALWAYS_SHOWN = ("ok", "failed")


def target_counts(job):
    """{"total", "parts": [{key, label, count, percent}], "text"} from the job's targets (one query)."""
    return counts_from(dict(job.targets.values_list("state").annotate(n=Count("pk")).order_by()))


def counts_from(by_state):
    """The counts of `target_counts` from {target state: number of targets}."""
    total = sum(by_state.values())
    parts = []
    for key, label, states in COUNTED:
        count = sum(by_state.get(state, 0) for state in states)
        if count or key in ALWAYS_SHOWN:
            parts.append({"key": key, "label": label, "count": count,
                          "percent": round(count * 100 / total, 2) if total else 0})
    text = ", ".join(f"{p['count']} {p['label']}" for p in parts) + f" of {total} target{'s' if total != 1 else ''}"
    return {"total": total, "parts": parts, "text": text}


def summary_counts(by_state):
    """{key: count} of every category with targets in it (what the jobs stream carries)."""
    return {key: n for key, _, states in COUNTED if (n := sum(by_state.get(state, 0) for state in states))}


def attach_counts(jobs):
    """Give each job of a page `counts` (as target_counts) in one query for the whole page, so a
    list says how many targets were canceled, failed or lost instead of "done"."""
    jobs = list(jobs)
    by_job = {job.pk: {} for job in jobs}
    rows = (JobTarget.objects.filter(job_id__in=list(by_job)).values_list("job_id", "state")
            .annotate(n=Count("pk")).order_by())
    for job_id, state, n in rows:
        by_job[job_id][state] = n
    for job in jobs:
        job.counts = counts_from(by_job[job.pk])
    return jobs


def why_waiting(job, approvals=()):
    """Words for why a job that has not started is not running, or "" (job: a Job; approvals: its
    ApprovalRequests, oldest first)."""
    if job.state == JobState.PENDING_APPROVAL:
        pending = [a for a in approvals if a.state == "pending"]
        if pending:
            a = pending[-1]
            return f"Waiting for approval: {a.approvals} of {a.required} (request #{a.pk})."
        return "Waiting for approval."
    if job.state == JobState.RUNNING:
        return _slices_waiting(job)
    if job.state != JobState.QUEUED:
        return ""
    if job.waiting_kind != WaitingKind.NONE and job.waiting_reason:
        return job.waiting_reason[:1].upper() + job.waiting_reason[1:]
    try:
        takers = heartbeat.takers(job.queue)
    except (RedisError, OSError):  # Redis down: say so rather than fail the page
        return "Cannot tell whether a worker is alive: Redis does not answer."
    if not takers:
        site = site_of_queue(job.queue)
        if site is not None:
            return (f"No worker for site {site}: it runs as soon as a worker takes queue {job.queue} "
                    f"(celery worker -Q {job.queue}).")
        return (f"No worker is alive to take it (queue {job.queue}): it runs as soon as one starts."
                if job.queue == "default" else
                f"No worker is alive on queue {job.queue}: it runs as soon as one takes that queue.")
    if job.queued_at:
        waited = int((timezone.now() - job.queued_at).total_seconds())
        if waited >= 5:
            return f"Queued {waited} s ago for a worker ({', '.join(takers)} alive on queue {job.queue})."
    return ""


def _slices_waiting(job):
    """Words for the slices of a running sliced job that no worker can take, or ""."""
    queued = list(JobSlice.objects.filter(job=job, state=SliceState.QUEUED).order_by("number")
                  .values_list("number", flat=True)[:21])
    if not queued:
        return ""
    try:
        takers = heartbeat.takers(job.queue)
    except (RedisError, OSError):
        return ""
    if takers:
        return ""
    numbers = ", ".join(str(n) for n in queued[:20]) + (", …" if len(queued) > 20 else "")
    site = site_of_queue(job.queue)
    who = f"no worker for site {site}" if site is not None else f"no worker is alive on queue {job.queue}"
    return (f"Slice{'s' if len(queued) > 1 else ''} {numbers} not started: {who}; "
            f"{'they run' if len(queued) > 1 else 'it runs'} as soon as a worker takes queue {job.queue}.")


def duration(job):
    """How long the job ran ("8 s", "3 min 12 s", "2 h 5 min"), or "" before it ended."""
    if not (job.started and job.finished):
        return ""
    seconds = max(0, int((job.finished - job.started).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
