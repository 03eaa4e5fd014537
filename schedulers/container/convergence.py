"""Follow a service until it converged, task by task.

wait_converged polls the service and its tasks (4 times a second by default) the way `docker
service create/update/scale --detach=false` does: a replicated service has converged when, per
slot, the task of the current spec version (the engine's `_up-to-date` filter) runs and is
meant to run, for as many slots as replicas; global services count one task per node. As the
CLI, it then waits `stable_for` seconds (default: the service's update monitor, else 5 s) and
starts over if a task fails meanwhile. An update is done when the engine says so
(UpdateStatus completed). It fails, in the engine's words, when the update paused or was
rolled back, when a task of the current spec is rejected (it cannot start: missing image,
bad mount …), or when tasks failed `max_task_failures` times outside an update.

Every task state change is reported as it is seen: on_event(TaskChange | UpdateChange).
"""
import re
import time
from dataclasses import dataclass, field

from ..base import CancelToken
from .inventory import service_mode, task_info
from .services import ServiceChange, ServiceNotFound, _engine_call

ORDER = {"new": 1, "allocated": 2, "pending": 3, "assigned": 4, "accepted": 5, "preparing": 6, "ready": 7,
         "starting": 8, "running": 9, "complete": 10, "shutdown": 11, "failed": 12, "rejected": 13,
         "remove": 14, "orphaned": 15}
DEFAULT_MONITOR = 5.0


@dataclass
class TaskChange:
    task_id: str
    slot: int | None
    node_id: str
    state: str
    desired_state: str
    message: str
    error: str
    container_id: str
    exit_code: int | None
    current: bool  # of the service's current spec version
    timestamp: str = ""  # the engine's time of this state (RFC 3339, nanoseconds)
    created_at: str = ""  # when the engine made the task
    kind: str = "task"


@dataclass
class UpdateChange:
    state: str  # updating, paused, completed, rollback_started, rollback_paused, rollback_completed
    message: str
    kind: str = "update"


@dataclass
class ConvergeResult:
    ok: bool
    outcome: str  # converged, update_completed, rolled_back, paused, rollback_paused, task_rejected,
    #               tasks_failed, timed_out, canceled, removed
    message: str
    running: int = 0
    desired: int | None = None
    seconds: float = 0.0
    failed_tasks: list = field(default_factory=list)  # TaskChange of current tasks that failed or were rejected


def _by_slot(rows, key):
    """Per slot (or node), the task with the lowest desired state, then the lowest state (as the CLI)."""
    chosen = {}
    for row in rows:
        desired, state = ORDER.get(row.get("DesiredState"), 0), ORDER.get((row.get("Status") or {}).get("State"), 0)
        if not desired or not state:
            continue
        k = key(row)
        held = chosen.get(k)
        if held is not None:
            held_desired = ORDER[held["DesiredState"]]
            held_state = ORDER[held["Status"]["State"]]
            if held_desired < desired or (held_desired == desired and held_state <= state):
                continue
        chosen[k] = row
    return chosen


def _running(rows, mode):
    key = (lambda r: r.get("NodeID")) if mode.startswith("global") else (lambda r: r.get("Slot"))
    chosen = _by_slot(rows, key)
    running = sum(1 for r in chosen.values()
                  if ORDER[r["DesiredState"]] <= ORDER["running"] and r["Status"]["State"] == "running")
    return running, len(chosen)


def wait_converged(client, service: ServiceChange | str, on_event=None, cancel: CancelToken | None = None,
                   timeout: float = 300.0, *, stable_for: float | None = None, poll: float = 0.25,
                   max_task_failures: int = 3) -> ConvergeResult:
    """Follow the service until it converged, the update finished, failed, or timeout/cancel.

    Pass the ServiceChange a change returned, so an earlier update's outcome is not taken for
    this one's; given an id, an update that had already finished when the wait began is ignored.
    """
    change = service if isinstance(service, ServiceChange) else None
    service_id = change.service_id if change else service
    previous_update = change.previous_update_started if change else None
    action = change.action if change else ""
    on_event = on_event or (lambda item: None)
    started = time.monotonic()
    deadline = started + timeout
    seen_tasks, failed, last_update, why = {}, {}, None, ""
    converged_at = None
    running, desired, polls = 0, None, 0

    def result(ok, outcome, message):
        return ConvergeResult(ok, outcome, message, running, desired, time.monotonic() - started,
                              list(failed.values()))

    while True:
        try:
            data = _engine_call(client, f"service {service_id}", client.api.inspect_service, service_id)
        except ServiceNotFound:
            return result(False, "removed", f"service {service_id} is gone")
        name = data["Spec"]["Name"]
        mode, desired = service_mode(data["Spec"])
        update = data.get("UpdateStatus") or {}
        if previous_update is None:
            # Given only an id: an update that had finished before we looked is history.
            finished = update.get("State") in ("completed", "rollback_completed")
            previous_update = update.get("StartedAt", "") if finished else ""
        ours = bool(update) and (previous_update is None or update.get("StartedAt", "") != previous_update)
        if ours and (update.get("State"), update.get("Message")) != last_update:
            last_update = (update.get("State"), update.get("Message"))
            on_event(UpdateChange(update.get("State", ""), update.get("Message", "")))
            if update.get("State") == "rollback_started":
                why = update.get("Message", "")  # names the task that failed; "rollback completed" does not
        what = f"tasks of service {name}"
        # Current tasks first, all tasks second: task states only move forward, so every state counted
        # as running below has been reported to on_event by the time the wait returns.
        current = _engine_call(client, what, client.api.tasks, filters={"service": data["ID"], "_up-to-date": "true"})
        rows = _engine_call(client, what, client.api.tasks, filters={"service": data["ID"]})
        current_ids = {r["ID"] for r in current}
        for row in sorted(rows, key=lambda r: (r.get("Slot") or 0, (r.get("Status") or {}).get("Timestamp", ""))):
            info = task_info(row)
            signature = (info.state, info.desired_state, info.error, info.node_id)
            if seen_tasks.get(info.id) != signature:
                changed = TaskChange(info.id, info.slot, info.node_id, info.state, info.desired_state, info.message,
                                     info.error, info.container_id, info.exit_code, info.id in current_ids,
                                     info.timestamp, row.get("CreatedAt", ""))
                on_event(changed)
                # Failures from before this wait began are history, not this change's doing.
                if info.state in ("failed", "rejected") and (polls or changed.current):
                    failed[info.id] = changed
                seen_tasks[info.id] = signature
        polls += 1
        running, count = _running(current, mode)
        if mode.startswith("global"):
            desired = (data.get("ServiceStatus") or {}).get("DesiredTasks") or count
        state = update.get("State", "") if ours else ""
        message = update.get("Message", "")
        if state in ("paused", "rollback_paused", "rollback_completed") and not failed:
            _blamed(client, why or message, failed, current_ids)
        last_error = _describe(next(reversed(failed.values()))) if failed else ""
        if state == "paused":
            return result(False, "paused", f"service {name}: update paused: {message}{last_error}")
        if state == "rollback_paused":
            return result(False, "rollback_paused", f"service {name}: rollback paused: {message}{last_error}")
        if state == "rollback_completed" and action != "rollback":
            return result(False, "rolled_back", f"service {name}: {why or 'update rolled back'}: {message}{last_error}")
        if state == "completed":
            return result(True, "update_completed", f"service {name}: update completed, {running}/{desired} running")
        in_progress = state in ("updating", "rollback_started")
        if not in_progress:
            current_failed = [t for t in failed.values() if t.current]
            rejected = [t for t in current_failed if t.state == "rejected"]
            if rejected:
                return result(False, "task_rejected", f"service {name}: a task cannot start{_describe(rejected[-1])}")
            if len(current_failed) >= max_task_failures:
                return result(False, "tasks_failed", f"service {name}: {len(current_failed)} tasks failed"
                                                     f"{_describe(current_failed[-1])}")
        if desired is not None and running == desired and not in_progress:
            if converged_at is None:
                converged_at = time.monotonic()
            monitor = stable_for
            if monitor is None:
                raw = (data["Spec"].get("UpdateConfig") or {}).get("Monitor")
                monitor = raw / 1e9 if raw else DEFAULT_MONITOR
            if time.monotonic() - converged_at >= monitor:
                return result(True, "converged", f"service {name}: converged, {running}/{desired} running")
        else:
            converged_at = None
        if cancel is not None and cancel.is_set():
            return result(False, "canceled", f"service {name}: stopped following ({cancel.reason}); "
                                             f"{running}/{desired} running, the engine carries on")
        if time.monotonic() >= deadline:
            return result(False, "timed_out", f"service {name}: not converged within {timeout:g}s: "
                                              f"{running}/{desired} running{last_error}")
        if cancel is not None:
            cancel.wait(poll)
        else:
            time.sleep(poll)


def _blamed(client, message, failed, current_ids):
    """Add the task an update message blames ("… early termination of task <id>") to failed."""
    match = re.search(r"task ([a-z0-9]{25})", message or "")
    if not match:
        return
    try:
        info = task_info(client.api.inspect_task(match.group(1)))
    except Exception:  # gone already, or the engine is: the update's own words remain
        return
    failed[info.id] = TaskChange(info.id, info.slot, info.node_id, info.state, info.desired_state, info.message,
                                 info.error, info.container_id, info.exit_code, info.id in current_ids,
                                 info.timestamp)


def _describe(task):
    where = f"task {task.slot}" if task.slot else f"task {task.task_id[:12]}"
    words = task.error or task.message or task.state
    return f"; last failure: {where} on node {task.node_id[:12]}: {words}"
