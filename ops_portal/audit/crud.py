"""Create, change and delete audited objects: one transaction, a permission decision before anything
is written, and the audit row with before/after. Domain services build on these.

The decision is made on the object as it would be (an unsaved instance, the changed field values,
the proposed many-to-many values) against the rights the actor held before the change
(`actor.authority`, frozen at first use). Checking after the write would let a change vouch for
itself: a new role binding is already visible to a permission query in the same transaction.

`authorize(authority, obj, m2m, before)` is a domain rule run at the same point (before any write):
grants, team membership, hosts with the local transport. `before` is the snapshot of the object
before an update or delete (None on create); `m2m` the proposed many-to-many values.
"""
from django.db import transaction

from ops_portal.accounts.choices import Action

from .services import record, snapshot


def audit_prefix(model):
    return getattr(model, "audit_prefix", model._meta.model_name)


def create_object(actor, model, fields, *, m2m=None, action=Action.MANAGE, audit_action=None, extra=None,
                  authorize=None):
    with transaction.atomic():
        authority = actor.authority
        obj = model(**fields)
        authority.require_on(action, obj)
        if authorize is not None:
            authorize(authority, obj, m2m or {}, None)
        obj.full_clean()
        obj.save()
        for name, values in (m2m or {}).items():
            getattr(obj, name).set(values)
        record(actor, audit_action or f"{audit_prefix(model)}.create", obj, after=snapshot(obj), extra=extra)
    return obj


def update_object(actor, obj, fields, *, m2m=None, action=Action.MANAGE, audit_action=None, extra=None,
                  authorize=None):
    with transaction.atomic():
        authority = actor.authority
        obj = type(obj).objects.select_for_update().get(pk=obj.pk)
        authority.require_on(action, obj)  # may change it as it is...
        before = snapshot(obj)
        for name, value in fields.items():
            setattr(obj, name, value)
        authority.require_on(action, obj)  # ...and as it would be
        if authorize is not None:
            authorize(authority, obj, m2m or {}, before)
        obj.full_clean()
        obj.save()
        for name, values in (m2m or {}).items():
            getattr(obj, name).set(values)
        after = snapshot(obj)
        if before != after:
            record(actor, audit_action or f"{audit_prefix(type(obj))}.update", obj, before=before, after=after,
                   extra=extra)
    return obj


def delete_object(actor, obj, *, action=Action.MANAGE, audit_action=None, extra=None, authorize=None):
    with transaction.atomic():
        authority = actor.authority
        authority.require_on(action, obj)
        before = snapshot(obj)
        if authorize is not None:
            authorize(authority, obj, {}, before)
        # Record first: the environment is resolved from the object while it still exists.
        record(actor, audit_action or f"{audit_prefix(type(obj))}.delete", obj, before=before, extra=extra)
        obj.delete()
