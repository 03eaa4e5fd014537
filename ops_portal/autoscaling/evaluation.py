"""Evaluating policies: claim an evaluation row (one per policy and key), read the metric, decide,
and launch the service.scale job through the containers service layer, in the transaction that
stores the decision and its audit row.

Idempotency: the row's unique (policy, key) makes a beat slot, or a person's request, one
evaluation however many ticks or workers see it; `started` is set once by whoever runs it (an
UPDATE … WHERE started IS NULL), and the decision is written under the policy's row lock, which
also serialises evaluations of one policy (cooldowns read the last scaling under that lock).
"""
import logging
import time
from datetime import timedelta

from celery import current_app
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from ops_portal.approvals.choices import ScheduleMode, TimeoutOutcome
from ops_portal.approvals.services import Requirement
from ops_portal.audit.services import record
from ops_portal.containers import services as container_services
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.jobs.choices import ACTIVE_STATES
from ops_portal.jobs.models import Job

from . import measure
from .choices import Metric, Outcome
from .decide import NO_METRIC, SCALE_UP, decide
from .models import Evaluation, ScalingPolicy

log = logging.getLogger(__name__)
APPROVAL_TIMEOUT_MINUTES = 60
STALE_AFTER = timedelta(minutes=10)  # an evaluation not finished by then: its worker was lost
KEEP_HOLDS = timedelta(days=7)  # evaluations that launched nothing are kept this long


def slot_key(policy, now=None):
    """The beat's key of the current slot: one evaluation per `interval` seconds."""
    return f"slot:{int((now or time.time()) // policy.interval)}"


def claim(policy, key, requested_by=""):
    """The new evaluation for (policy, key), or None when that key was evaluated already."""
    try:
        with transaction.atomic():
            return Evaluation.objects.create(policy=policy, key=key[:64], metric=policy.metric,
                                             requested_by=requested_by[:150])
    except IntegrityError:
        return None


def _finish(evaluation, outcome, reason, **fields):
    evaluation.outcome = outcome
    evaluation.reason = reason[:1000]
    evaluation.finished = timezone.now()
    for name, value in fields.items():
        setattr(evaluation, name, value)
    evaluation.save()
    return evaluation


def _busy_job(service):
    """An unfinished job on the service (ours waiting for approval, or anyone's update)."""
    return (Job.objects.filter(state__in=ACTIVE_STATES, targets__kind="service", targets__ref_id=service.pk)
            .order_by("pk").first())


def _since_last_scale(policy, evaluation, now):
    last = (Evaluation.objects.filter(policy=policy, job__isnull=False).exclude(pk=evaluation.pk)
            .order_by("-finished").values_list("finished", flat=True).first())
    return None if last is None else (now - last).total_seconds()


def approval_for(policy, decision):
    """The approval a scale-up past the policy's limit waits for (None: none beyond the environment's)."""
    if policy.approval_above is None or decision.action != SCALE_UP or decision.desired <= policy.approval_above:
        return None
    return Requirement(required=1, timeout_minutes=APPROVAL_TIMEOUT_MINUTES, timeout_outcome=TimeoutOutcome.REJECT,
                       schedule_mode=ScheduleMode.PER_RUN,
                       policies=[f"autoscaling: {policy.service_name} above {policy.approval_above} replicas"])


def run(evaluation_id):
    """Measure and decide one claimed evaluation (once: a second caller gets None)."""
    if not Evaluation.objects.filter(pk=evaluation_id, started__isnull=True).update(started=timezone.now()):
        return None
    evaluation = Evaluation.objects.select_related("policy__engine__environment").get(pk=evaluation_id)
    policy = evaluation.policy
    service = measure.service_of(policy)
    reading = measure.read(policy, service) if service is not None and policy.enabled else None
    with transaction.atomic():
        policy = ScalingPolicy.objects.select_for_update().select_related("engine__environment").get(pk=policy.pk)
        evaluation = Evaluation.objects.select_for_update().get(pk=evaluation_id)
        if evaluation.finished is not None:
            return evaluation
        if not policy.enabled or not policy.engine.enabled:
            return _finish(evaluation, Outcome.SKIPPED, "the policy or its engine is disabled")
        if service is None:
            return _finish(evaluation, Outcome.SKIPPED, f"no service {policy.service_name} on {policy.engine.name} "
                                                        "(not created yet, or not read from the engine yet)")
        return _decide(policy, service, evaluation, reading)


def _decide(policy, service, evaluation, reading):
    now = timezone.now()
    evaluation.value, evaluation.samples = reading.value, reading.samples
    current = reading.replicas if reading.replicas is not None else service.replicas_desired
    evaluation.current_replicas = current
    if current is None:
        return _finish(evaluation, Outcome.FAILED, reading.message or "the service's replicas are not known")
    if service.mode != "replicated":
        return _finish(evaluation, Outcome.SKIPPED, f"service {service.name} is {service.mode or 'not replicated'}")
    decision = decide(policy.rules(), current=current, value=reading.value,
                      since_last_scale=_since_last_scale(policy, evaluation, now))
    evaluation.desired_replicas = decision.desired
    metric_words = (f"{'CPU' if policy.metric == Metric.CPU else 'metric'} {reading.value}"
                    f"{'%' if policy.metric == Metric.CPU else ''}" if reading.value is not None else "no reading")
    detail = f" ({reading.message})" if reading.message else ""
    if decision.action == NO_METRIC:
        return _finish(evaluation, Outcome.NO_METRIC, f"{decision.reason}{detail}")
    if not decision.scales:
        return _finish(evaluation, Outcome.HOLD, f"{metric_words}{detail}: {decision.reason}")
    busy = _busy_job(service)
    if busy is not None:
        return _finish(evaluation, Outcome.HOLD, f"{metric_words}{detail}: {decision.reason}; held while job "
                                                 f"#{busy.pk} ({busy.name}) on the service is {busy.state}")
    approval = approval_for(policy, decision)
    reason = (f"autoscaling policy #{policy.pk}: {metric_words}{detail}: {decision.reason}"
              + (f"; above {policy.approval_above} replicas needs approval" if approval else ""))
    actor = Actor.system(source=Source.SCHEDULE)
    try:
        with transaction.atomic():
            job = container_services.scale_service(
                actor, service, decision.desired, reason=reason[:2000], approval=approval,
                name=f"Autoscale {service.name} {decision.current} → {decision.desired}")
            record(actor, "scalingpolicy.scale", policy, extra={
                "service": service.name, "from": decision.current, "to": decision.desired, "job": job.pk,
                "metric": policy.metric, "value": reading.value, "samples": reading.samples,
                "reason": decision.reason, "approval": bool(approval), "evaluation": evaluation.pk})
    except (ValidationError, PermissionDenied) as exc:
        words = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        return _finish(evaluation, Outcome.FAILED, f"{reason}; the scale job was refused: {words}")
    outcome = Outcome.SCALE_UP if decision.action == SCALE_UP else Outcome.SCALE_DOWN
    return _finish(evaluation, outcome, reason, job=job)


def evaluate(policy, key, requested_by=""):
    """Claim and run in this process (an evaluation asked for directly); None when the key was taken."""
    evaluation = claim(policy, key, requested_by)
    return run(evaluation.pk) if evaluation is not None else None


def send(evaluation_id):
    current_app.send_task("autoscaling.evaluate", args=[evaluation_id])


def tick(now=None):
    """The beat's work: claim the current slot of every enabled policy whose slot is new, and send
    each evaluation to a worker (on commit); end evaluations whose worker was lost; prune old holds."""
    now_ts = now or time.time()
    sent = []
    policies = ScalingPolicy.objects.filter(enabled=True, engine__enabled=True).select_related("engine")
    for policy in policies:
        evaluation = claim(policy, slot_key(policy, now_ts))
        if evaluation is not None:
            sent.append(evaluation.pk)
            transaction.on_commit(lambda pk=evaluation.pk: send(pk))
    cutoff = timezone.now()
    Evaluation.objects.filter(finished__isnull=True, created__lt=cutoff - STALE_AFTER).update(
        outcome=Outcome.FAILED, finished=cutoff, reason="never finished: its worker was lost")
    Evaluation.objects.filter(job__isnull=True, created__lt=cutoff - KEEP_HOLDS).delete()
    return sent
