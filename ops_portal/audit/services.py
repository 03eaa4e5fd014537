"""Writing the audit log. Service functions call record() inside their transaction."""
import datetime
import decimal
import uuid

from django.db import connection, transaction
from django.utils import timezone

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import environment_id_of
from ops_portal.core.crypto import EncryptedTextField

from .models import AuditEvent
from .registry import describe

REDACTED = "<secret>"


def _jsonable(value):
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


def snapshot(obj, *, exclude=()):
    """The audit view of a model instance: concrete fields and many-to-many ids; secrets redacted."""
    if obj is None:
        return None
    data = {}
    skip = set(exclude) | set(getattr(type(obj), "audit_exclude", ()))
    for field in obj._meta.concrete_fields:
        if field.name in skip:
            continue
        value = getattr(obj, field.attname)
        if isinstance(field, EncryptedTextField) or field.name in getattr(type(obj), "audit_secret_fields", ()):
            value = REDACTED if value else ""
        data[field.name] = _jsonable(value)
    if obj.pk is not None:
        for field in obj._meta.many_to_many:
            if field.name not in skip:
                data[field.name] = sorted(getattr(obj, field.name).values_list("pk", flat=True))
    return data


def _environment_of(obj):
    if obj is None:
        return None
    if isinstance(obj, Environment):
        return obj if obj.pk else None
    environment_id = environment_id_of(obj)
    return Environment.objects.filter(pk=environment_id).first() if environment_id else None


def record(actor, action, obj=None, *, before=None, after=None, environment=None, extra=None,
           object_type=None, object_id=None, object_repr=None):
    """Append one audit row. Must run inside the transaction of the change it describes."""
    describe(action)  # refuses unknown actions
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must be called inside transaction.atomic()")
    if environment is None and obj is not None:
        environment = _environment_of(obj)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id if object_id is not None else str(obj.pk)
        object_repr = object_repr if object_repr is not None else str(obj)[:200]
    return AuditEvent.objects.create(
        actor_id=actor.user_id,
        actor_name=actor.username,
        action=action,
        object_type=object_type or "",
        object_id=str(object_id or ""),
        object_repr=(object_repr or "")[:200],
        environment=environment,
        environment_name=environment.name if environment else "",
        before=_jsonable(before),
        after=_jsonable(after),
        extra=_jsonable(extra),
        request_id=actor.request_id,
        source=actor.source,
        client_address=actor.client_address,
    )


def record_many(actor, action, changes, *, environment):
    """Append one audit row per (obj, before, after) of `changes`, all of one action in one
    environment (e.g. the alerts an evaluation opens at once), in one INSERT per 1,000 rows. The
    same rows record() writes; must run inside the transaction of the changes."""
    describe(action)
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record_many() must be called inside transaction.atomic()")
    rows = [AuditEvent(actor_id=actor.user_id, actor_name=actor.username, action=action,
                       object_type=obj._meta.label_lower, object_id=str(obj.pk), object_repr=str(obj)[:200],
                       environment=environment, environment_name=environment.name if environment else "",
                       before=_jsonable(before), after=_jsonable(after), extra=None, request_id=actor.request_id,
                       source=actor.source, client_address=actor.client_address)
            for obj, before, after in changes]
    return AuditEvent.objects.bulk_create(rows, batch_size=1000)


def changed_fields(before, after):
    """The keys whose values differ between two snapshots."""
    before, after = before or {}, after or {}
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def prune(actor, *, older_than_days):
    """Remove audit rows older than the retention period; the removal itself is audited."""
    cutoff = timezone.now() - datetime.timedelta(days=older_than_days)
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL ops_portal.audit_prune = 'on'")
            cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE time < %s", [cutoff])
            removed = cursor.rowcount
        record(actor, "audit.prune", object_type="audit.auditevent", object_repr=f"before {cutoff:%Y-%m-%d}",
               extra={"removed": removed, "older_than_days": older_than_days})
    return removed

