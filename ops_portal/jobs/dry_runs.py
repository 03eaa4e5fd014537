"""The dry run approvers see: when a job waits for approval and its action has a read-only form
(ActionSpec.dry_run_param: Ansible's check mode with diffs, Puppet's --noop), the same plan with that
parameter set is launched at once, in the transaction that opens the request (so the requester
cannot leave it out): the same pinned project revision, parameters (secrets re-used encrypted) and
targets, all at once (the real job's strategy is for changing things). It needs no approval itself
and is linked to the request (Job.dry_run_for); the request's page shows its per-host diffs and the
audit row of each decision notes which dry run, in which state, the approver had in front of them.

Honest limit: check mode is Ansible's: a task that sets `check_mode: false` runs for real in the dry
run too, and modules without check-mode support are skipped (their change is not shown).
"""
import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.template.loader import render_to_string

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can
from ops_portal.approvals import evidence
from ops_portal.approvals.models import ApprovalRequest
from ops_portal.approvals.signals import request_opened
from ops_portal.audit.services import record
from ops_portal.core import targets as target_kinds

from . import actions
from .choices import FINISHED_STATES
from .launch import create_job
from .lifecycle import stored_params
from .models import Job

log = logging.getLogger(__name__)
SHOWN_TARGETS = 200


def wanted(job, spec):
    """True when a job waiting for approval gets a dry run: its action has one and the job is not one."""
    return bool(spec is not None and spec.dry_run_param and not job.params.get(spec.dry_run_param)
                and job.dry_run_for_id is None)


def launch_for(actor, request, job):
    """Launch the dry run of `job` for approval `request` (inside the request's transaction). A plan
    that cannot be dry-run (its project gone) is noted in the audit log; the request stays open."""
    spec = actions.get(job.action)
    if not wanted(job, spec):
        return None
    public, secret = stored_params(job)
    public[spec.dry_run_param] = True
    refs = list(job.targets.order_by("index").values_list("kind", "ref_id"))
    targets = [t for t in target_kinds.current_entries(refs) if not t["fingerprint"].get("missing")]
    try:
        with transaction.atomic():
            return create_job(
                actor, environment=job.environment, spec=spec, public=public, secret=secret, targets=targets,
                strategy={}, name=f"Dry run for approval #{request.pk}: {job.name}"[:200], template=job.template,
                timeout_seconds=job.timeout_seconds, target_timeout_seconds=job.target_timeout_seconds,
                queue=job.queue, dry_run_for=request)
    except (ValidationError, PermissionDenied) as exc:
        reason = "; ".join(getattr(exc, "messages", None) or [str(exc)])[:500]
        log.warning("no dry run for approval %s of job %s: %s", request.pk, job.pk, reason)
        record(actor, "job.dry_run_refused", job, extra={"approval": request.pk, "reason": reason})
        return None


@receiver(request_opened, sender=ApprovalRequest)
def on_request_opened(sender, request, actor, **kwargs):
    if request.subject_type != "job":
        return
    job = Job.objects.select_related("environment", "template").filter(pk=request.subject_id).first()
    if job is not None:
        launch_for(actor, request, job)


def latest(request):
    return request.dry_runs.order_by("-created", "-pk").first()


def panel_context(request):
    job = latest(request)
    if job is None:
        return {"approval": request, "dry_run": None}
    rows = []
    for target in job.targets.order_by("index")[:SHOWN_TARGETS]:
        data = target.data or {}
        rows.append({"target": target, "diffs": data.get("diff") or [], "truncated": data.get("diff_truncated"),
                     "counts": data.get("counts"), "resources": data.get("resources")})
    return {"approval": request, "dry_run": job, "rows": rows, "finished": job.state in FINISHED_STATES,
            "more": max(0, job.targets_total - SHOWN_TARGETS),
            "would_change": sum(1 for r in rows if (r["counts"] or {}).get("changed")
                                or (r["resources"] or {}).get("out_of_sync"))}


def panel(request, user, http_request=None):
    if request.subject_type != "job" or not can(user, Action.VIEW, request.environment_id):
        return ""
    if not request.dry_runs.exists():
        job = Job.objects.filter(pk=request.subject_id).only("action", "params", "dry_run_for_id").first()
        if job is None or not wanted(job, actions.get(job.action)):
            return ""  # an action without a dry run: nothing to show
    return render_to_string("jobs/_dry_run.html", panel_context(request), request=http_request)


def note(request):
    job = latest(request)
    if job is None:
        return {}
    return {"dry_run": {"job": job.pk, "state": job.state, "finished": job.state in FINISHED_STATES}}


evidence.register("job", panel=panel, note=note)
