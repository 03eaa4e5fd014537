"""Create, change and delete audited objects: one transaction, a permission check after the
write, and the audit row with before/after. Domain services build on these."""
from django.core.exceptions import PermissionDenied
from django.db import transaction

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can_on

from .services import record, snapshot


def _check(actor, action, obj):
    user = actor.user
    if user is not None and not can_on(user, action, obj):
        # Raised inside the transaction: the write is rolled back (NetBox's check after write).
        raise PermissionDenied(f"You may not {action} {obj._meta.verbose_name} {obj}.")


def audit_prefix(model):
    return getattr(model, "audit_prefix", model._meta.model_name)


def create_object(actor, model, fields, *, m2m=None, action=Action.MANAGE, audit_action=None, extra=None):
    with transaction.atomic():
        obj = model(**fields)
        obj.full_clean()
        obj.save()
        for name, values in (m2m or {}).items():
            getattr(obj, name).set(values)
        _check(actor, action, obj)
        record(actor, audit_action or f"{audit_prefix(model)}.create", obj, after=snapshot(obj), extra=extra)
    return obj


def update_object(actor, obj, fields, *, m2m=None, action=Action.MANAGE, audit_action=None, extra=None):
    with transaction.atomic():
        obj = type(obj).objects.select_for_update().get(pk=obj.pk)
        _check(actor, action, obj)
        before = snapshot(obj)
        for name, value in fields.items():
            setattr(obj, name, value)
        obj.full_clean()
        obj.save()
        for name, values in (m2m or {}).items():
            getattr(obj, name).set(values)
        _check(actor, action, obj)
        after = snapshot(obj)
        if before != after:
            record(actor, audit_action or f"{audit_prefix(type(obj))}.update", obj, before=before, after=after,
                   extra=extra)
    return obj


def delete_object(actor, obj, *, action=Action.MANAGE, audit_action=None, extra=None):
    with transaction.atomic():
        _check(actor, action, obj)
        before = snapshot(obj)
        # Record first: the environment is resolved from the object while it still exists.
        record(actor, audit_action or f"{audit_prefix(type(obj))}.delete", obj, before=before, extra=extra)
        obj.delete()
