"""Approval policies and requests: who must agree before work runs, and recording that they did.

This app knows nothing of jobs: a request covers a subject (type, id) and a plan with its hash;
when a request ends, the request_decided signal tells whoever owns the subject.
"""
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, holders, require
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record
from ops_portal.core import streams
from ops_portal.core.errors import StateConflict
from ops_portal.notifications.services import notify

from . import evidence
from .choices import Decision, RequestState, ScheduleMode, TimeoutOutcome
from .models import ApprovalComment, ApprovalDecision, ApprovalLink, ApprovalPolicy, ApprovalRequest
from .signals import request_decided, request_opened

LINK_SALT = "ops_portal.approvals.link"
LINK_MAX_AGE = 7 * 24 * 3600


class Conflict(StateConflict):
    """The request is not in a state that allows this (already decided, expired...)."""


@dataclass
class Requirement:
    required: int
    timeout_minutes: int
    timeout_outcome: str
    schedule_mode: str
    policies: list = field(default_factory=list)


# Policies ----------------------------------------------------------------------------------

def _clean_policy(fields):
    for key in ("templates", "actions", "risks"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            raise ValidationError({key: ["Give a list of names."]})
    return fields


def create_policy(actor, **fields):
    return create_object(actor, ApprovalPolicy, _clean_policy(fields))


def update_policy(actor, policy, **fields):
    return update_object(actor, policy, _clean_policy(fields))


def delete_policy(actor, policy):
    delete_object(actor, policy)


def _matches(policy, *, template, action, risks, target_count):
    conditions = []
    if policy.all_work:
        conditions.append(True)
    if policy.templates:
        conditions.append(template in policy.templates)
    if policy.actions:
        conditions.append(action in policy.actions)
    if policy.risks:
        conditions.append(bool(set(policy.risks) & set(risks)))
    if policy.min_targets is not None:
        conditions.append(target_count > policy.min_targets)
    return bool(conditions) and all(conditions)


def evaluate(environment, *, template=None, action, risks=(), target_count=0):
    """The combined requirement of every matching policy (strictest wins), or None."""
    matching = [p for p in ApprovalPolicy.objects.filter(environment=environment, enabled=True)
                if _matches(p, template=template, action=action, risks=list(risks), target_count=target_count)]
    if not matching:
        return None
    return Requirement(
        required=max(p.approvals_required for p in matching),
        timeout_minutes=min(p.timeout_minutes for p in matching),
        timeout_outcome=(TimeoutOutcome.REJECT if any(p.timeout_outcome == TimeoutOutcome.REJECT for p in matching)
                         else TimeoutOutcome.APPROVE),
        schedule_mode=(ScheduleMode.PER_RUN if any(p.schedule_mode == ScheduleMode.PER_RUN for p in matching)
                       else ScheduleMode.STANDING),
        policies=sorted(p.name for p in matching),
    )


# Requests ----------------------------------------------------------------------------------

def group(environment_id):
    return f"approvals.env.{environment_id}"


def summary(request):
    return {"kind": "approval", "id": request.pk, "state": request.state, "title": request.title,
            "subject_type": request.subject_type, "subject_id": request.subject_id,
            "environment": request.environment_id, "required": request.required,
            "approvals": request.approvals, "requested_by": request.requested_by_name,
            "expires_at": request.expires_at.isoformat()}


def _announce(request):
    payload = summary(request)
    transaction.on_commit(lambda: streams.publish(group(request.environment_id), payload))
    if request.state != RequestState.PENDING:
        transaction.on_commit(lambda: request_decided.send(ApprovalRequest, request=request))


def open_request(actor, *, environment, subject_type, subject_id, title, plan, plan_hash, requirement):
    """Ask for approval of one plan. Call inside the transaction that creates the subject."""
    request = ApprovalRequest.objects.create(
        environment=environment, subject_type=subject_type, subject_id=subject_id, title=title[:200], plan=plan,
        plan_hash=plan_hash, requested_by_id=actor.user_id, requested_by_name=actor.username,
        required=requirement.required, policies=requirement.policies,
        expires_at=timezone.now() + timedelta(minutes=requirement.timeout_minutes),
        timeout_outcome=requirement.timeout_outcome,
    )
    record(actor, "approval.request", request, after={
        "subject": f"{subject_type} {subject_id}", "required": request.required, "policies": request.policies,
        "plan_hash": plan_hash, "expires_at": request.expires_at})
    request_opened.send(ApprovalRequest, request=request, actor=actor)
    _announce(request)
    _notify_requested(request)
    return request


def _notify_requested(request):
    link = make_link(request)
    plan = request.plan
    notify("approval.requested", environment=request.environment,
           subject=f"Approval needed: {request.title}",
           payload={**summary(request), "link": f"{settings.PORTAL_URL}/approvals/link/{link}/",
                    "plan": {key: plan.get(key) for key in ("action", "template", "target_count", "params",
                                                            "schedule", "kind", "cron")
                             if key in plan}})


def _lock(request):
    return ApprovalRequest.objects.select_for_update().select_related("environment").get(pk=request.pk)


def _end(actor, request, state, reason, audit_action):
    request.state = state
    request.reason = reason[:500]
    request.decided_at = timezone.now()
    request.save(update_fields=["state", "reason", "decided_at"])
    record(actor, audit_action, request, after={"state": state, "reason": request.reason})
    _announce(request)


def decide(actor, request, decision, comment=""):
    """Approve or reject. Nobody decides on their own request; one rejection ends it."""
    if decision not in Decision.values:
        raise ValidationError({"decision": ["Say approve or reject."]})
    with transaction.atomic():
        request = _lock(request)
        user = actor.user
        if user is None:
            raise PermissionDenied("Only people decide on approvals.")
        if request.requested_by_id == user.pk:
            raise PermissionDenied("Nobody approves their own request (four eyes).")
        if not can(user, Action.APPROVE, request.environment):
            raise PermissionDenied(f"You may not approve in {request.environment}.")
        if request.state != RequestState.PENDING:
            raise Conflict({"state": [f"This request is already {request.get_state_display().lower()}."]})
        if request.expires_at <= timezone.now():
            raise Conflict({"state": ["This request has expired."]})
        if request.decisions.filter(user=user).exists():
            raise Conflict({"decision": ["You already decided on this request."]})
        ApprovalDecision.objects.create(request=request, user=user, user_name=user.get_username(),
                                        decision=decision, comment=comment)
        # What the approver had in front of them besides the plan (the dry run's state and job).
        seen = evidence.note(request)
        extra = {**({"comment": comment} if comment else {}), **seen}
        record(actor, f"approval.{decision}", request, extra=extra or None)
        if decision == Decision.REJECT:
            _end(actor, request, RequestState.REJECTED, f"rejected by {user.get_username()}", "approval.reject")
        elif request.approvals >= request.required:
            names = ", ".join(request.decisions.filter(decision=Decision.APPROVE).values_list("user_name", flat=True))
            _end(actor, request, RequestState.APPROVED, f"approved by {names}", "approval.approved")
        else:
            _announce(request)
    return request


def approvers(request, limit=50):
    """Names of the people who could still decide on a pending request: those who may approve in
    its environment, less the requester (four eyes) and those who already decided."""
    if request.state != RequestState.PENDING:
        return []
    decided = [d.user_id for d in request.decisions.all()]
    users = holders(Action.APPROVE, request.environment_id).exclude(pk__in=[*decided, request.requested_by_id])
    return sorted(users.values_list("username", flat=True).order_by("username")[:limit])


def add_comment(actor, request, text):
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": ["Write something."]})
    with transaction.atomic():
        request = _lock(request)
        if actor.user is not None:
            require(actor.user, Action.VIEW, request.environment)
        comment = ApprovalComment.objects.create(request=request, user_id=actor.user_id, user_name=actor.username,
                                                 text=text[:4000])
        record(actor, "approval.comment", request, extra={"comment": comment.text})
    return comment


def invalidate(actor, request, reason):
    """End a pending (or approved, not yet used) request because its plan changed."""
    with transaction.atomic():
        request = _lock(request)
        if request.state in (RequestState.PENDING, RequestState.APPROVED):
            _end(actor, request, RequestState.INVALIDATED, reason, "approval.invalidated")
    return request


def withdraw(actor, request, reason="withdrawn"):
    with transaction.atomic():
        request = _lock(request)
        if request.state == RequestState.PENDING:
            _end(actor, request, RequestState.WITHDRAWN, reason, "approval.withdrawn")
    return request


def expire_due(actor):
    """End pending requests past their time with the policy's outcome (reject by default)."""
    ended = 0
    for pk in ApprovalRequest.objects.filter(state=RequestState.PENDING,
                                             expires_at__lte=timezone.now()).values_list("pk", flat=True):
        with transaction.atomic():
            request = ApprovalRequest.objects.select_for_update().get(pk=pk)
            if request.state != RequestState.PENDING:
                continue
            if request.timeout_outcome == TimeoutOutcome.APPROVE:
                _end(actor, request, RequestState.APPROVED, "approved automatically when it expired",
                     "approval.expired")
            else:
                _end(actor, request, RequestState.EXPIRED, "nobody decided in time", "approval.expired")
            ended += 1
    return ended


# One-time links ----------------------------------------------------------------------------

def make_link(request):
    nonce = secrets.token_urlsafe(24)
    ApprovalLink.objects.create(request=request, nonce=nonce)
    return signing.dumps({"r": request.pk, "n": nonce}, salt=LINK_SALT, compress=True)


def use_link(actor, token):
    """The request a signed link points to; a link works once, for a signed-in user."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise ValidationError({"link": ["This link has expired."]})
    except signing.BadSignature:
        raise ValidationError({"link": ["This link is not valid."]})
    with transaction.atomic():
        link = ApprovalLink.objects.select_for_update().filter(request_id=data.get("r"), nonce=data.get("n")).first()
        if link is None:
            raise ValidationError({"link": ["This link is not valid."]})
        if link.used_at is not None:
            raise ValidationError({"link": ["This link was already used. Open the request from the inbox."]})
        link.used_at = timezone.now()
        link.used_by = actor.username
        link.save(update_fields=["used_at", "used_by"])
        record(actor, "approval.link_used", link.request)
    return link.request
