"""Celery tasks of self-healing."""
from celery import shared_task

from . import healer


@shared_task(name="healing.decide", ignore_result=True, acks_late=True)
def decide(event_id):
    """Decide on one healing need (queued by the container_changed receiver, again after a backoff)."""
    event = healer.decide(event_id)
    return event.state if event is not None else None


@shared_task(name="healing.settle", ignore_result=True)
def settle():
    """Resolve crash-loop alerts of containers that stayed up; decide needs whose backoff passed."""
    return healer.settle()
