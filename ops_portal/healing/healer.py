"""Deciding on a healing need, in a worker (Celery task healing.decide), and settling crash-loop
alerts (healing.settle, periodic).

decide(event) looks at the container as the database holds it now (the watcher keeps it current)
and, in one transaction with the event's row locked (so a redelivered task cannot act twice):

1. leaves it alone when it is gone, up again, healthy again, a Swarm task, was stopped on request
   (the engine's "stop" event since its last start: docker stop and the portal's stop job both give
   one; or a person's stop/kill/remove/pause job on it in the last REQUESTED_WINDOW seconds), exited
   with code 0 (unless the policy says otherwise), or no policy covers it any more;
2. counts the healing jobs launched for the container (by engine and name, so recreates keep their
   history) within the policy's window: at max_attempts it gives up and raises the crash-loop alert;
3. otherwise waits out the backoff after the last attempt (the event is WAITING and decided again at
   its time), then launches container.restart or container.recreate through the containers service
   layer as the portal's system actor (approval policies, leases and the job's audit apply).

Every decision is audited with the event.
"""
import datetime
import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ops_portal.audit.services import record
from ops_portal.containers import services as containers
from ops_portal.containers.models import Container
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.jobs.choices import ACTIVE_STATES
from ops_portal.jobs.models import Job
from ops_portal.monitoring import services as monitoring
from ops_portal.monitoring.choices import OPEN_STATES as OPEN_ALERTS
from ops_portal.monitoring.models import Alert

from . import rules
from .choices import ALERT_SEVERITY, ALERT_SOURCE, OPEN_STATES, EventState, Trigger
from .models import HealingEvent, HealingPolicy
from .receivers import send_decision

log = logging.getLogger(__name__)
REQUESTED_WINDOW = 120  # seconds: a person's stop/kill/remove/pause job this recent means the exit was wanted
REQUESTED_ACTIONS = ("container.stop", "container.kill", "container.remove", "container.pause")
HEAL_ACTIONS = ("container.restart", "container.recreate")
DEFAULT_STABLE = 120


def alert_key(engine_id, name):
    return f"container:{engine_id}:{name}"[:200]


def actor():
    return Actor.system(Source.SYSTEM)


def _jobs_on(container, actions):
    return Job.objects.filter(action__in=actions, targets__kind="container", targets__ref_id=container.pk)


def why_not(event, container, now):
    """Why the container is left alone (None: it still needs healing)."""
    if container is None:
        return "the container is gone"
    if container.started_at is None:
        return "the container never started"
    if container.service_id:
        return "a Swarm service's task: Swarm replaces it"
    if not container.engine.enabled:
        return f"engine {container.engine.name} is disabled"
    if event.trigger == Trigger.EXIT and container.state not in rules.DOWN:
        return f"the container is {container.state or 'back'} again"
    if event.trigger == Trigger.UNHEALTHY and (container.state != "running" or container.health != "unhealthy"):
        return f"the container is {container.health or container.state or 'fine'} again"
    if event.trigger == Trigger.EXIT and rules.requested_stop(container):
        return "stopped on request (the engine reported a stop: docker stop or the portal's stop job)"
    since = now - datetime.timedelta(seconds=REQUESTED_WINDOW)
    wanted = (_jobs_on(container, REQUESTED_ACTIONS).filter(Q(created__gte=since) | Q(state__in=ACTIVE_STATES))
              .exclude(created_by__isnull=True, created_by_name="").order_by("-pk").first())
    if wanted is not None:
        return f"stopped on purpose by job #{wanted.pk} ({wanted.action})"
    return None


def _decided(event, state, reason, now, audit_action, extra=None):
    event.state, event.reason, event.decided = state, reason[:500], now
    event.save(update_fields=["state", "reason", "decided", "attempt", "delay_seconds", "not_before", "job",
                              "policy", "policy_name", "action"])
    record(actor(), audit_action, event, extra={"container": event.container_name, "engine": event.engine_id,
                                                "trigger": event.trigger, "exit_code": event.exit_code,
                                                "policy": event.policy_name, "reason": event.reason, **(extra or {})})
    return event


def decide(event_id, now=None):
    """Decide on one healing need (idempotent: only a pending or waiting event is decided)."""
    now = now or timezone.now()
    with transaction.atomic():
        event = HealingEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.state not in OPEN_STATES:
            return event
        if event.not_before and event.not_before > now:  # an early delivery: wait for the time set
            send_decision(event.pk, (event.not_before - now).total_seconds())
            return event
        container = (Container.objects.select_related("engine", "host").filter(
            engine_id=event.engine_id, docker_id=event.docker_id).first())
        reason = why_not(event, container, now)
        if reason:
            return _decided(event, EventState.SKIPPED, reason, now, "healing.skip")
        policy = rules.choose(_policies(container), container, event.trigger)
        if policy is None:
            return _decided(event, EventState.SKIPPED, "no enabled policy covers the container any more", now,
                            "healing.skip")
        if event.trigger == Trigger.EXIT and container.exit_code == 0 and not policy.heal_clean_exit:
            return _decided(event, EventState.SKIPPED, "exited with code 0 (finished, not crashed)", now,
                            "healing.skip")
        event.policy, event.policy_name, event.action = policy, policy.name, policy.action
        later = HealingEvent.objects.filter(engine_id=event.engine_id, container_name=event.container_name,
                                            state__in=OPEN_STATES, pk__gt=event.pk).exists()
        if later:
            return _decided(event, EventState.SKIPPED, "a later exit of the container is decided instead", now,
                            "healing.skip")
        running = _jobs_on(container, HEAL_ACTIONS).filter(state__in=ACTIVE_STATES).order_by("-pk").first()
        if running is not None:
            return _decided(event, EventState.SKIPPED, f"healing job #{running.pk} is still under way", now,
                            "healing.skip")
        window_start = now - datetime.timedelta(seconds=policy.window_seconds)
        attempts = list(HealingEvent.objects.filter(
            engine_id=event.engine_id, container_name=event.container_name, state=EventState.LAUNCHED,
            decided__gte=window_start).order_by("-decided").values_list("decided", flat=True))
        if len(attempts) >= policy.max_attempts:
            event.attempt = len(attempts)
            _give_up(event, container, policy, len(attempts))
            return _decided(event, EventState.GAVE_UP,
                            f"crash loop: {len(attempts)} {policy.action}s within {policy.window_seconds} s "
                            f"(the policy's limit); alert raised", now, "healing.gave_up")
        wait = rules.delay(policy, len(attempts))
        due = attempts[0] + datetime.timedelta(seconds=wait) if attempts else now
        event.delay_seconds = wait
        if due > now:
            event.state, event.not_before = EventState.WAITING, due
            event.reason = f"backoff: attempt {len(attempts) + 1} waits {wait:g} s after the last"
            event.save(update_fields=["state", "not_before", "reason", "delay_seconds", "policy", "policy_name",
                                      "action"])
            send_decision(event.pk, (due - now).total_seconds())
            return event
        event.attempt = len(attempts) + 1
        try:
            job = containers.launch_containers(actor(), f"container.{policy.action}", [container])
        except (ValidationError, PermissionDenied) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            return _decided(event, EventState.SKIPPED, f"the {policy.action} job was refused: {message}", now,
                            "healing.skip")
        event.job = job
        return _decided(event, EventState.LAUNCHED, f"{policy.action} (attempt {event.attempt} of "
                                                     f"{policy.max_attempts} within {policy.window_seconds} s)",
                        now, "healing.launch", {"job": job.pk, "attempt": event.attempt})


def _policies(container):
    return list(HealingPolicy.objects.filter(environment_id=container.engine.environment_id, enabled=True)
                .filter(Q(engine__isnull=True) | Q(engine_id=container.engine_id)))


def _give_up(event, container, policy, attempts):
    host = container.host or container.engine.host
    if host is not None and host.environment_id != container.engine.environment_id:
        host = None
    code = f", last exit code {container.exit_code}" if container.exit_code is not None else ""
    monitoring.raise_external(
        ALERT_SOURCE, alert_key(container.engine_id, container.name), environment=container.engine.environment,
        host=host, severity=ALERT_SEVERITY, actor=actor(), subject=("container", container.pk, container.name),
        summary=f"Container {container.name} on engine {container.engine.name} is in a crash loop: "
                f"{attempts} {policy.action}s within {policy.window_seconds} s did not keep it up{code}; "
                f"self-healing stopped trying")


def settle(now=None):
    """Resolve the crash-loop alerts of containers that have been up for their policy's stable time,
    or are gone; decide waiting needs whose time has come (in case a queued decision was lost).
    Returns the resolved alerts' keys."""
    now = now or timezone.now()
    resolved = []
    for alert in Alert.objects.filter(source=ALERT_SOURCE, state__in=OPEN_ALERTS):
        _, engine_id, name = (alert.key.split(":", 2) + ["", ""])[:3]
        container = (Container.objects.select_related("engine").filter(engine_id=engine_id, name=name).first()
                     if engine_id.isdigit() else None)
        if container is None:
            resolution = "the container is gone"
        else:
            policy = rules.choose(_policies(container), container, Trigger.EXIT)
            stable = policy.stable_seconds if policy else DEFAULT_STABLE
            up_since = container.started_at
            if container.state != "running" or up_since is None or (now - up_since).total_seconds() < stable:
                continue
            resolution = f"the container has stayed up for {int((now - up_since).total_seconds())} s"
        monitoring.resolve_external(ALERT_SOURCE, alert.key, actor=actor(), resolution=resolution)
        resolved.append(alert.key)
    for event_id in HealingEvent.objects.filter(state=EventState.WAITING, not_before__lte=now).values_list(
            "pk", flat=True):
        decide(event_id, now)
    return resolved
