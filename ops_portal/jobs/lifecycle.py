"""A job's life: the one place its state changes (transition), what is published and notified when
it does, how it reaches a worker (Celery tasks sent by name, so nothing here imports tasks.py),
and the plan hash an approval signs.

Every module of the jobs engine above the models builds on this one; it imports none of them
but `live` (the target counts a summary carries).
"""
import hashlib
import hmac
import json

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from ops_portal.audit.services import record
from ops_portal.core import streams
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.core.errors import StateConflict
from ops_portal.notifications.services import notify

from . import groups, live
from .choices import FAILED_STATES, FINISHED_STATES, TRANSITIONS, JobState, WaitingKind
from .models import Lease

RUN_TASK = "jobs.run"
DISPATCH_TASK = "jobs.dispatch_waiting"


class InvalidTransition(StateConflict):
    pass


def worker_actor(job):
    """The launching user, acting through the worker (so the audit log says who and how)."""
    return Actor(job.created_by_id, job.created_by_name, Source.WORKER, job.request_id or "")


# State -------------------------------------------------------------------------------------

def transition(actor, job, new_state, **fields):
    """Move a job to new_state (checked against TRANSITIONS), audited, published on commit.

    Call inside a transaction with the job row locked (select_for_update).
    """
    allowed = TRANSITIONS.get(job.state, set())
    if new_state not in allowed:
        raise InvalidTransition({"state": [f"A {job.get_state_display().lower()} job cannot become {new_state}."]})
    before = job.state
    now = timezone.now()
    job.state = new_state
    if new_state == JobState.RUNNING:
        job.started = now
        job.heartbeat = now
    if new_state == JobState.QUEUED:
        job.queued_at = now
    job.waiting_reason, job.waiting_kind = "", WaitingKind.NONE  # a wait belongs to one stay in a state
    if new_state in FINISHED_STATES:
        job.finished = now
    for name, value in fields.items():
        setattr(job, name, value)
    job.save()
    if new_state in FINISHED_STATES:
        Lease.objects.filter(job=job).delete()
    record(actor, f"job.{new_state}", job, before={"state": before},
           after={"state": new_state, **{k: v for k, v in fields.items() if k in ("error", "worker")}})
    publish_job(job)
    if new_state in FINISHED_STATES:
        notify_finished(job)
    return job


def wait(job, kind, reason):
    """Say why a queued job does not run yet (kind: a WaitingKind; reason: words for people)."""
    if job.waiting_reason != reason or job.waiting_kind != kind:
        job.waiting_reason, job.waiting_kind = reason[:300], kind
        job.save(update_fields=["waiting_reason", "waiting_kind"])
        publish_job(job)


# Telling others ----------------------------------------------------------------------------

NOTIFY_EVENTS = {JobState.SUCCEEDED: "job.succeeded", **{state: "job.failed" for state in FAILED_STATES}}


def notify_finished(job):
    """Webhooks and email for the finished job, delivered after commit (and retried)."""
    notify(NOTIFY_EVENTS.get(job.state, "job.finished"), environment=job.environment_id,
           subject=f"Job #{job.pk} {job.name}: {job.get_state_display().lower()}",
           payload={**job_summary(job), "error": job.error[:2000], "url": f"{settings.PORTAL_URL}/jobs/{job.pk}/"},
           dedupe_key=f"job-{job.pk}-{job.state}")


def job_summary(job):
    return {
        "kind": "job", "id": job.pk, "name": job.name, "state": job.state, "environment": job.environment_id,
        "action": job.action, "targets_total": job.targets_total, "targets_done": job.targets_done,
        "targets_failed": job.targets_failed, "waiting_reason": job.waiting_reason,
        # Per category (ok, failed, canceled, skipped, lost, running, pending): canceled and lost
        # targets are not "done", and a list updated live must not say they are.
        "counts": live.summary_counts(dict(job.targets.values_list("state").annotate(n=Count("pk")).order_by()))
        if job.pk else {},
        "cancel_requested": bool(job.cancel_requested), "created_by": job.created_by_name,
        "started": job.started.isoformat() if job.started else None,
        "finished": job.finished.isoformat() if job.finished else None,
    }


def publish_job(job):
    """Tell the jobs list and the targets' object streams about the job (after commit)."""
    summary = job_summary(job)
    target_refs = list(job.targets.values_list("kind", "ref_id")[:500]) if job.pk else []

    def send():  # not waited for: a launch or a claim goes on while Redis tells the streams
        streams.publish_to([groups.jobs_in(job.environment_id)]
                           + [groups.object_jobs(kind, ref_id, job.environment_id) for kind, ref_id in target_refs],
                           summary, wait=False)

    transaction.on_commit(send)


# Reaching a worker -------------------------------------------------------------------------

def enqueue(job, **options):
    """Send the job to a worker once the transaction commits (a worker never sees an unstored job)."""
    job_id, queue = job.pk, job.queue
    transaction.on_commit(lambda: current_app.send_task(RUN_TASK, (job_id,), queue=queue, **options))


def dispatch_soon():
    """Ask for a pass over the waiting jobs (a job ended: a lease or a concurrency slot is free)."""
    current_app.send_task(DISPATCH_TASK)


# The plan ----------------------------------------------------------------------------------

def plan_targets(targets):
    """What of each plan entry an approval covers: kind, reference and fingerprint."""
    return [[t["kind"], t["ref_id"], t["fingerprint"]] for t in targets]


def plan_hash(environment, action, public, secret, targets, strategy, timeouts, template_version=None):
    secret_digests = {name: hmac.new(settings.SECRET_KEY.encode(), str(value).encode(), hashlib.sha256).hexdigest()
                      for name, value in secret.items()}
    plan = {"environment": environment.pk, "action": action, "params": public, "secrets": secret_digests,
            "targets": plan_targets(targets), "strategy": strategy,
            "timeouts": timeouts, "template_version": template_version}
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def stored_params(job):
    """(public, secret): the job's parameters, secrets from the encrypted store."""
    secret = json.loads(job.secret_params) if job.secret_params else {}
    return {k: v for k, v in job.params.items() if k not in secret}, secret
