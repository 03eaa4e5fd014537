"""Celery tasks: attempt one delivery, and bring back deliveries whose message was lost.

A delivery is a database row first; messages only say "try this one now". deliver() claims the
row (status still pending, nobody else holding it), sends outside any transaction, then records
the outcome. A message that is lost, or a worker that dies mid-send, leaves a pending row whose
next_attempt_at passes: retry_due (every minute, from beat) enqueues it again.
"""
import logging
from datetime import timedelta
from functools import partial

from celery import shared_task
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import conf, sending
from .choices import DeliveryStatus
from .models import Delivery

log = logging.getLogger(__name__)
# A message may arrive this early (clocks of different machines) and still count as due.
EARLY_TOLERANCE = timedelta(seconds=2)
HISTORY_LIMIT = 50
RETRY_DUE_BATCH = 1000


def enqueue(delivery_id, countdown=None):
    """Queue an attempt; if the broker is away, retry_due picks the delivery up later."""
    try:
        deliver.apply_async((delivery_id,), countdown=countdown)
    except Exception:
        log.warning("could not queue notification delivery %s; retry_due will pick it up", delivery_id,
                    exc_info=True)


def enqueue_on_commit(delivery_id, countdown=None):
    transaction.on_commit(partial(enqueue, delivery_id, countdown))


def enqueue_many(delivery_ids):
    """Queue an attempt for each delivery over one broker connection; what cannot be queued waits
    for retry_due, as with enqueue()."""
    queued = 0
    try:
        with deliver.app.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                deliver.apply_async((delivery_id,), producer=producer)
                queued += 1
    except Exception:
        log.warning("could not queue %d notification deliveries; retry_due will pick them up",
                    len(delivery_ids) - queued, exc_info=True)


# Deliveries one fan_out message names: the caller (an alert evaluation holding its rule's lock)
# sends one message per this many, and a worker sends the one message per delivery.
FAN_OUT_BATCH = 500


def enqueue_many_on_commit(delivery_ids):
    """Once the transaction commits, queue attempts of many deliveries through fan_out messages."""
    delivery_ids = list(delivery_ids)
    if len(delivery_ids) == 1:
        enqueue_on_commit(delivery_ids[0])
    elif delivery_ids:
        transaction.on_commit(partial(_fan_out, delivery_ids))


def _fan_out(delivery_ids):
    try:
        with fan_out.app.producer_or_acquire() as producer:
            for start in range(0, len(delivery_ids), FAN_OUT_BATCH):
                fan_out.apply_async((delivery_ids[start:start + FAN_OUT_BATCH],), producer=producer)
    except Exception:
        log.warning("could not queue %d notification deliveries; retry_due will pick them up", len(delivery_ids),
                    exc_info=True)


@shared_task(name="notifications.fan_out", acks_late=True, ignore_result=True)
def fan_out(delivery_ids):
    """Queue one attempt per delivery (a lost message or a dead worker: retry_due covers them)."""
    enqueue_many([int(delivery_id) for delivery_id in delivery_ids])


@shared_task(name="notifications.deliver", acks_late=True, ignore_result=True, soft_time_limit=90, time_limit=120)
def deliver(delivery_id):
    """Make one attempt at a delivery; returns its status after the attempt (None if not attempted).

    Safe to receive twice: only a due, unclaimed, pending row is sent.
    """
    claimed = claim(delivery_id)
    if claimed is None:
        return None
    delivery, channel = claimed
    if not channel.enabled and delivery.event != "test":
        outcome = sending.Outcome(False, None, "The channel was disabled before the notification was sent.")
        recorded = record_attempt(delivery.pk, outcome, give_up=True)
    else:
        recorded = record_attempt(delivery.pk, sending.send(delivery, channel))
    return getattr(recorded, "status", None)


def claim(delivery_id, now=None):
    """Mark the delivery as in flight; None when it is gone, done, early or held by another worker."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(of=("self",)).select_related("channel__environment")
                    .filter(pk=delivery_id).first())
        if delivery is None:
            log.info("notification delivery %s no longer exists", delivery_id)
            return None
        if delivery.status != DeliveryStatus.PENDING:
            return None
        if delivery.claimed_until is not None and delivery.claimed_until > now:
            log.info("notification delivery %s is being sent by another worker", delivery_id)
            return None
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY_TOLERANCE:
            # A stray early message; the delivery's own timer or retry_due brings it back when due.
            return None
        delivery.claimed_until = now + timedelta(seconds=float(conf.get("NOTIFICATION_CLAIM_SECONDS")))
        delivery.save(update_fields=["claimed_until"])
    return delivery, delivery.channel


def record_attempt(delivery_id, outcome, *, give_up=False, now=None):
    """Store the outcome of one attempt and schedule the next one (with backoff) or give up."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (Delivery.objects.select_for_update(of=("self",)).select_related("channel")
                    .filter(pk=delivery_id).first())
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return delivery  # removed meanwhile, or another worker recorded it after our claim ran out
        delivery.attempts += 1
        delivery.claimed_until = None
        delivery.response_status = outcome.response_status
        entry = {"attempt": delivery.attempts, "at": now.isoformat(), "response_status": outcome.response_status,
                 "duration_ms": outcome.duration_ms, "error": outcome.error, "retry_at": None}
        target = sending.redact_url(delivery.channel.url) if delivery.channel.url else "email"
        if outcome.ok:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.last_error = ""
            log.info("notification delivery %s (%s) delivered to channel %s (%s) on attempt %s", delivery.pk,
                     delivery.event, delivery.channel_id, target, delivery.attempts)
        elif give_up or delivery.attempts >= conf.max_attempts():
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = outcome.error[:500]
            log.warning("notification delivery %s (%s) to channel %s (%s) failed for good after %s attempts: %s",
                        delivery.pk, delivery.event, delivery.channel_id, target, delivery.attempts, outcome.error)
        else:
            delay = conf.backoff_seconds(delivery.attempts)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            delivery.last_error = outcome.error[:500]
            entry["retry_at"] = delivery.next_attempt_at.isoformat()
            enqueue_on_commit(delivery.pk, countdown=delay)
            log.warning("notification delivery %s (%s) to channel %s (%s) attempt %s failed, retry in %gs: %s",
                        delivery.pk, delivery.event, delivery.channel_id, target, delivery.attempts, delay,
                        outcome.error)
        delivery.history = (list(delivery.history or []) + [entry])[-HISTORY_LIMIT:]
        delivery.save(update_fields=["attempts", "claimed_until", "response_status", "status", "delivered_at",
                                     "next_attempt_at", "last_error", "history"])
    return delivery


@shared_task(name="notifications.retry_due", ignore_result=True)
def retry_due(limit=RETRY_DUE_BATCH):
    """Enqueue pending deliveries that are overdue and not in flight (lost messages, dead workers)."""
    now = timezone.now()
    overdue = now - timedelta(seconds=float(conf.get("NOTIFICATION_RETRY_GRACE_SECONDS")))
    with transaction.atomic():
        ids = list(
            Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=overdue)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        # Due again from now: the next run leaves them alone unless this message is lost too.
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
        for delivery_id in ids:
            enqueue_on_commit(delivery_id)
    if ids:
        log.info("re-queued %s overdue notification deliveries", len(ids))
    return len(ids)
