"""Jobs under approval: ask when policy says so, queue when approved, and never run a plan that
changed after it was approved. (The approvals app decides; this module holds jobs to its answers.)"""
import logging

from django.db import transaction
from django.dispatch import receiver

from ops_portal.approvals import services as approvals
from ops_portal.approvals.choices import RequestState, ScheduleMode, TimeoutOutcome
from ops_portal.approvals.models import ApprovalRequest
from ops_portal.approvals.signals import request_decided
from ops_portal.audit.services import record
from ops_portal.core import targets as target_kinds

from .choices import JobState, TargetState
from .lifecycle import enqueue, plan_hash, stored_params, transition, worker_actor
from .models import Job, JobTarget

log = logging.getLogger(__name__)


def approval_plan(job):
    """What approvers see: exactly what will run."""
    targets = list(job.targets.order_by("index").values("name", "fingerprint"))
    return {
        "job": job.pk, "name": job.name, "action": job.action, "environment": job.environment.name,
        "template": job.template.name if job.template_id else None, "template_version": job.template_version,
        "params": job.params, "strategy": job.strategy, "target_count": len(targets), "targets": targets[:500],
        "timeout_seconds": job.timeout_seconds, "plan_hash": job.plan_hash,
    }


def strictest(first, second):
    """Two requirements combined as matching policies combine: the strictest wins."""
    if first is None or second is None:
        return first or second
    return approvals.Requirement(
        required=max(first.required, second.required),
        timeout_minutes=min(first.timeout_minutes, second.timeout_minutes),
        timeout_outcome=(TimeoutOutcome.REJECT if TimeoutOutcome.REJECT in (first.timeout_outcome,
                                                                             second.timeout_outcome)
                         else TimeoutOutcome.APPROVE),
        schedule_mode=(ScheduleMode.PER_RUN if ScheduleMode.PER_RUN in (first.schedule_mode, second.schedule_mode)
                       else ScheduleMode.STANDING),
        policies=sorted(set(first.policies) | set(second.policies)))


def requirement_for(actor, environment, spec, values, target_count, template=None, required=None):
    """The approval a launch of `spec` on `target_count` targets would need (a Requirement), or
    None when it would run at once. Creates nothing: the launch preview asks it too."""
    if actor.is_system and not spec.mutating and required is None:
        return None
    return strictest(approvals.evaluate(environment, template=template.name if template else None,
                                        action=spec.name, risks=spec.risk_tags(values, target_count),
                                        target_count=target_count), required)


def gate(actor, job, spec, values, template, required=None):
    """Hold the new (queued) job for approval when a policy asks. Returns True when it waits.

    The portal's own read-only work (facts, metrics, drift checks launched by the system) changes
    nothing and needs no approval; anything a person launches, or anything that changes targets,
    goes through the policies. `required` is a Requirement the launcher adds on top of the
    environment's policies (an autoscaling policy's "approval above N replicas").
    """
    requirement = requirement_for(actor, job.environment, spec, values, job.targets_total, template, required)
    if requirement is None:
        return False
    transition(actor, job, JobState.PENDING_APPROVAL, queued_at=None)
    _request(actor, job, requirement)
    return True


def _request(actor, job, requirement):
    job.approval_request = approvals.open_request(
        actor, environment=job.environment, subject_type="job", subject_id=job.pk,
        title=f"Job #{job.pk}: {job.name} on {job.targets_total} targets", plan=approval_plan(job),
        plan_hash=job.plan_hash, requirement=requirement)
    job.save(update_fields=["approval_request"])


def current_plan_hash(job):
    """The job's plan hash recomputed from today's targets (through their kinds) and template."""
    refs = list(job.targets.order_by("index").values_list("kind", "ref_id"))
    targets = target_kinds.current_entries(refs)
    public, secret = stored_params(job)
    template_version = job.template.version if job.template_id else None
    return plan_hash(job.environment, job.action, public, secret, targets, job.strategy,
                     {"job": job.timeout_seconds, "target": job.target_timeout_seconds}, template_version), targets


def plan_still_approved(actor, job):
    """True when the approved plan is still the plan. Otherwise invalidate the approval, refreeze
    the plan from today's inventory and ask again (the job waits for approval). Call with the job
    row locked."""
    if job.approval_request_id is None:
        return True
    old = job.approval_request
    standing = old.subject_type != "job"
    new_hash, targets = current_plan_hash(job)
    # A job's own approval signed its plan hash; a schedule's standing approval covered the plan
    # the job froze at launch (the firing checked its targets against the approval).
    if new_hash == (job.plan_hash if standing else old.plan_hash):
        return True
    if standing:
        # The schedule's next firing asks for the standing approval again; this run asks for itself.
        record(actor, "job.plan_changed", job, before={"plan_hash": job.plan_hash}, after={"plan_hash": new_hash},
               extra={"standing_request": old.pk})
    else:
        approvals.invalidate(actor, old, "the plan changed after approval (inventory or template edited)")
    for target, fresh in zip(job.targets.order_by("index"), targets, strict=True):
        if target.fingerprint != fresh["fingerprint"]:
            JobTarget.objects.filter(pk=target.pk).update(fingerprint=fresh["fingerprint"])
    job.plan_hash = new_hash
    job.save(update_fields=["plan_hash"])
    if job.state == JobState.QUEUED:
        transition(actor, job, JobState.PENDING_APPROVAL)
    _request(actor, job, approvals.Requirement(
        required=old.required, timeout_minutes=max(1, int((old.expires_at - old.created).total_seconds() // 60)),
        timeout_outcome=old.timeout_outcome, schedule_mode="per_run", policies=old.policies))
    return False


@receiver(request_decided, sender=ApprovalRequest)
def on_request_decided(sender, request, **kwargs):
    if request.subject_type != "job":
        return
    with transaction.atomic():
        job = (Job.objects.select_for_update(of=("self",)).select_related("environment", "template",
                                                                          "approval_request")
               .filter(pk=request.subject_id).first())
        if job is None or job.state != JobState.PENDING_APPROVAL or job.approval_request_id != request.pk:
            return
        actor = worker_actor(job)
        if request.state == RequestState.APPROVED:
            if plan_still_approved(actor, job):
                transition(actor, job, JobState.QUEUED)
                enqueue(job)
        elif request.state in (RequestState.REJECTED, RequestState.EXPIRED, RequestState.WITHDRAWN):
            JobTarget.objects.filter(job=job).update(state=TargetState.SKIPPED)
            final = {RequestState.REJECTED: JobState.REJECTED, RequestState.EXPIRED: JobState.EXPIRED,
                     RequestState.WITHDRAWN: JobState.CANCELED}[request.state]
            transition(actor, job, final, error=request.reason)
