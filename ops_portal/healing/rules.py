"""The decision rules of self-healing, free of the database: which change is a healing need, which
policy covers a container, the need's idempotency key, and the crash-loop backoff."""
import datetime

from .choices import Trigger

DOWN = ("exited", "dead")


def trigger_of(change):
    """Trigger.EXIT when a running container stopped, Trigger.UNHEALTHY when a running one turned
    unhealthy; None for anything else (containers first seen by a resync, removals, recoveries,
    Swarm tasks)."""
    before, after = change.before or {}, change.after or {}
    if change.service_id or not after or change.container_id is None:
        return None
    if not before:
        # First seen through an engine event already down: it died before the watcher looked (a crash
        # right after its start). First seen down by a resync: an old exit, not ours to judge.
        return Trigger.EXIT if change.action != "sync" and after.get("state") in DOWN else None
    if after.get("state") in DOWN and before.get("state") not in DOWN:
        return Trigger.EXIT
    if (after.get("state") == "running" and after.get("health") == "unhealthy"
            and before.get("health") != "unhealthy"):
        return Trigger.UNHEALTHY
    return None


def labels_match(selector, labels):
    labels = labels or {}
    return all(key in labels and (wanted == "" or labels[key] == wanted) for key, wanted in (selector or {}).items())


def covers(policy, container, trigger):
    """Does the (enabled) policy heal this container for this trigger?"""
    return (policy.enabled and trigger in policy.triggers()
            and (not policy.engine_id or policy.engine_id == container.engine_id)
            and (not policy.container_name or policy.container_name == container.name)
            and labels_match(policy.label_selector, container.labels))


def choose(policies, container, trigger):
    """The most specific policy that covers the container (None: it is not healed)."""
    matching = [p for p in policies if covers(p, container, trigger)]
    return max(matching, key=lambda p: p.specificity, default=None)


def _stamp(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else str(value)


def event_key(engine_id, container, trigger):
    """One key per engine event: an exit is named by the container and its finish time (its restart
    count when the engine gave none), turning unhealthy by the start it happened in."""
    if trigger == Trigger.EXIT:
        when = container.finished_at or f"restarts-{container.restart_count}"
    else:
        when = container.started_at or f"restarts-{container.restart_count}"
    return f"{engine_id}:{container.docker_id[:64]}:{trigger}:{_stamp(when)}"[:200]


def delay(policy, attempts):
    """Seconds to wait after the last attempt before attempt `attempts + 1`: none for the first,
    then backoff_seconds doubled for each attempt after the second, at most backoff_max_seconds."""
    if attempts <= 0:
        return 0.0
    return float(min(policy.backoff_seconds * 2 ** (attempts - 1), policy.backoff_max_seconds))


def requested_stop(container):
    """Did the engine stop this container on request (docker stop, the stop API) since it last started?"""
    stopped, started = container.stop_requested_at, container.started_at
    return stopped is not None and (started is None or stopped >= started)
