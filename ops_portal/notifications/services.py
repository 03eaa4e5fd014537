"""Notifications: notify() records deliveries in the caller's transaction and queues them once it
commits; channels change through audited services."""
import json
import secrets

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import require_on
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, snapshot
from ops_portal.core.errors import StateConflict

from . import registry
from .choices import DeliveryStatus
from .models import Delivery, NotificationChannel
from .tasks import HISTORY_LIMIT, enqueue_many_on_commit, enqueue_on_commit

MAX_PAYLOAD_BYTES = 64 * 1024
SECRET_BYTES = 32


def generate_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def _clean_subject(subject):
    subject = " ".join(str(subject or "").split())
    if not subject:
        raise ValueError("notify() needs a subject")
    return subject[:200]


def _clean_payload(payload):
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise TypeError("a notification payload is a dict")
    text = json.dumps(payload, cls=DjangoJSONEncoder)  # raises TypeError for what JSON cannot hold
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a notification payload is at most {MAX_PAYLOAD_BYTES} bytes of JSON")
    return json.loads(text)


def _create_delivery(channel, **fields):
    if not fields["dedupe_key"]:
        return Delivery.objects.create(channel=channel, **fields)
    if Delivery.objects.filter(channel=channel, event=fields["event"], dedupe_key=fields["dedupe_key"]).exists():
        return None
    try:
        # A savepoint: a concurrent duplicate must not abort the caller's transaction.
        with transaction.atomic():
            return Delivery.objects.create(channel=channel, **fields)
    except IntegrityError:
        return None


def notify(event, *, environment, subject, payload, dedupe_key=None):
    """Announce `event` in `environment` to every enabled channel there that subscribes to it.

    Call inside the transaction of the change being announced: the deliveries are stored with it
    (a rollback leaves none) and queued for the workers only once it commits. With a dedupe_key, a
    channel gets one delivery per (event, key) however often the event is announced. Returns the
    deliveries created.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("notify() must be called inside the transaction of the event it announces")
    subscriptions = registry.subscriptions_for(event)  # refuses unknown events
    if not isinstance(environment, Environment):
        environment = Environment.objects.get(pk=environment)
    fields = {
        "event": event,
        "environment_name": environment.name,
        "subject": _clean_subject(subject),
        "payload": _clean_payload(payload),
        "dedupe_key": str(dedupe_key or "")[:200],
        "next_attempt_at": timezone.now(),
    }
    deliveries = []
    for channel in NotificationChannel.objects.filter(environment=environment, enabled=True).order_by("pk"):
        if not subscriptions & set(channel.events):
            continue
        delivery = _create_delivery(channel, **fields)
        if delivery is not None:
            deliveries.append(delivery)
            enqueue_on_commit(delivery.pk)
    return deliveries


def notify_many(event, *, environment, notices):
    """notify() for many announcements of one event in one environment (an evaluation's alerts):
    `notices` is a list of (subject, payload, dedupe_key). The same deliveries notify() would make,
    with one read of the channels, one of the keys already delivered and one INSERT per channel."""
    if not connection.in_atomic_block:
        raise RuntimeError("notify_many() must be called inside the transaction of the events it announces")
    subscriptions = registry.subscriptions_for(event)
    if not notices:
        return []
    now = timezone.now()
    cleaned = [{"event": event, "environment_name": environment.name, "subject": _clean_subject(subject),
                "payload": _clean_payload(payload), "dedupe_key": str(dedupe_key or "")[:200],
                "next_attempt_at": now} for subject, payload, dedupe_key in notices]
    deliveries = []
    for channel in NotificationChannel.objects.filter(environment=environment, enabled=True).order_by("pk"):
        if not subscriptions & set(channel.events):
            continue
        keys = [fields["dedupe_key"] for fields in cleaned if fields["dedupe_key"]]
        sent = set(Delivery.objects.filter(channel=channel, event=event, dedupe_key__in=keys)
                   .values_list("dedupe_key", flat=True)) if keys else set()
        rows = [Delivery(channel=channel, **fields) for fields in cleaned if fields["dedupe_key"] not in sent]
        try:
            with transaction.atomic():  # a savepoint: a concurrent duplicate falls back to one at a time
                made = Delivery.objects.bulk_create(rows, batch_size=1000)
        except IntegrityError:
            made = [d for d in (_create_delivery(channel, **{f: getattr(row, f) for f in cleaned[0]}) for row in rows)
                    if d is not None]
        deliveries.extend(made)
    enqueue_many_on_commit([delivery.pk for delivery in deliveries])
    return deliveries


def create_channel(actor, *, secret=None, **fields):
    """Add a channel; without a secret, one is generated (read it once through rotate_secret)."""
    return create_object(actor, NotificationChannel, {**fields, "secret": secret or generate_secret()})


def update_channel(actor, channel, **fields):
    fields.pop("secret", None)  # the secret changes only through rotate_secret
    return update_object(actor, channel, fields)


def delete_channel(actor, channel):
    """Remove a channel with its deliveries (pending ones are dropped)."""
    delete_object(actor, channel)


def rotate_secret(actor, channel, secret=None):
    """Replace the signing secret. Returns (channel, new secret): the only time the secret is shown."""
    secret = secret or generate_secret()
    channel = update_object(actor, channel, {"secret": secret, "secret_rotated": timezone.now()},
                            audit_action="notificationchannel.rotate_secret")
    return channel, secret


def send_test(actor, channel):
    """Send a "test" delivery to this one channel (even a disabled one), whatever it subscribes to."""
    with transaction.atomic():
        channel = NotificationChannel.objects.select_related("environment").get(pk=channel.pk)
        if actor.user is not None:
            require_on(actor.user, Action.MANAGE, channel)
        delivery = Delivery.objects.create(
            channel=channel, event="test", environment_name=channel.environment.name,
            subject=f"Test notification for channel {channel.name}",
            payload={"message": "If you can read this, the channel works.",
                     "requested_by": actor.username or "system", "channel": channel.name},
            next_attempt_at=timezone.now(),
        )
        record(actor, "notificationchannel.test", channel, extra={"delivery": delivery.pk})
        enqueue_on_commit(delivery.pk)
    return delivery


def retry_delivery(actor, delivery):
    """Give a failed delivery a fresh series of attempts."""
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(of=("self",)).select_related("channel__environment")
                    .get(pk=delivery.pk))
        if actor.user is not None:
            require_on(actor.user, Action.OPERATE, delivery)
        if delivery.status != DeliveryStatus.FAILED:
            raise StateConflict(f"Only a failed delivery can be retried; this one is "
                                f"{delivery.get_status_display().lower()}.")
        before = snapshot(delivery)
        now = timezone.now()
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts = 0
        delivery.next_attempt_at = now
        delivery.claimed_until = None
        delivery.history = (list(delivery.history or []) + [
            {"retry_requested_by": actor.username or "system", "at": now.isoformat()}])[-HISTORY_LIMIT:]
        delivery.save(update_fields=["status", "attempts", "next_attempt_at", "claimed_until", "history"])
        record(actor, "delivery.retry", delivery, before=before, after=snapshot(delivery))
        enqueue_on_commit(delivery.pk)
    return delivery
