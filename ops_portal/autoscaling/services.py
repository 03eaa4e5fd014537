"""Everything people change in autoscaling: policies (operators and administrators of the engine's
environment; audited, decided before anything is written) and evaluations asked for now.

The decisions themselves are made by evaluation.py (the beat, or a person's "evaluate now"), and
each scaling is a service.scale job launched through the containers service layer.
"""
from django.core.exceptions import ValidationError
from django.db import transaction

from ops_portal.accounts.choices import Action
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record

from . import evaluation
from .models import ScalingPolicy


def _authorize(authority, policy, m2m, before):
    engine = policy.engine
    if before is None and not engine.is_manager:
        raise ValidationError({"engine": [f"Engine {engine.name} is not a Swarm manager (swarm role: "
                                          f"{engine.get_swarm_role_display().lower()}): services scale there."]})


def create_policy(actor, **fields):
    return create_object(actor, ScalingPolicy, fields, action=Action.OPERATE, authorize=_authorize)


def update_policy(actor, policy, **fields):
    return update_object(actor, policy, fields, action=Action.OPERATE, authorize=_authorize)


def delete_policy(actor, policy):
    delete_object(actor, policy, action=Action.OPERATE)


def evaluate_now(actor, policy):
    """Claim an evaluation keyed by the request (a retried request is one evaluation) and send it to a
    worker; audited. Returns the evaluation (pending until the worker decided)."""
    actor.authority.require_on(Action.OPERATE, policy)
    if not policy.enabled:
        raise ValidationError({"enabled": ["The policy is disabled: enable it first."]})
    with transaction.atomic():
        claimed = evaluation.claim(policy, f"now:{actor.request_id}", requested_by=actor.username)
        if claimed is None:
            raise ValidationError({"policy": ["This request asked for an evaluation already."]})
        record(actor, "scalingpolicy.evaluate", policy, extra={"evaluation": claimed.pk})
        transaction.on_commit(lambda: evaluation.send(claimed.pk))
    return claimed
