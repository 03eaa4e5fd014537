"""The receiver of containers.signals.container_changed: it runs in the watcher (and in workers that
store a job's outcome), so it only records the need and queues the decision; it never calls an
engine. A few queries per batch of changes, none when no change is a healing need."""
import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from ops_portal.containers.models import Container

from . import rules
from .choices import EventState
from .models import HealingEvent, HealingPolicy

log = logging.getLogger(__name__)
DECIDE_TASK = "healing.decide"


def send_decision(event_id, countdown=None):
    """Queue the decision on an event once the transaction commits."""
    if countdown is None:
        countdown = settings.HEALING_SETTLE_MS / 1000
    transaction.on_commit(lambda: current_app.send_task(DECIDE_TASK, (event_id,), countdown=countdown))


def on_container_changed(sender, engine, changes, **kwargs):
    """Record a HealingEvent (once per engine event: its key is unique) for each container that
    exited or turned unhealthy under a policy, and queue its decision."""
    needs = [(change, trigger) for change in changes if (trigger := rules.trigger_of(change))]
    if not needs:
        return []
    policies = list(HealingPolicy.objects.filter(environment_id=engine.environment_id, enabled=True)
                    .filter(Q(engine__isnull=True) | Q(engine_id=engine.pk)))
    if not policies:
        return []
    containers = Container.objects.in_bulk([change.container_id for change, _ in needs])
    recorded = []
    for change, trigger in needs:
        container = containers.get(change.container_id)
        if container is None or container.service_id:  # gone already, or a Swarm task (Swarm heals those)
            continue
        policy = rules.choose(policies, container, trigger)
        if policy is None:
            continue
        with transaction.atomic():
            event, created = HealingEvent.objects.get_or_create(
                key=rules.event_key(engine.pk, container, trigger),
                defaults={"environment_id": engine.environment_id, "engine_id": engine.pk, "container": container,
                          "docker_id": container.docker_id, "container_name": container.name, "policy": policy,
                          "policy_name": policy.name, "trigger": trigger, "exit_code": container.exit_code,
                          "action": policy.action, "state": EventState.PENDING})
            if created:
                send_decision(event.pk)
                recorded.append(event)
    return recorded
