"""Storing what refreshes and actions observed: a host's managers, its programs, their restart
history and crash-loop alerts. Called from a job's writer thread (ctx.after); one transaction per
host, a few queries whatever the number of programs. Observations are not audited per row (like
host facts); the jobs that made them are.

Restart history (ProgramEvent) is what changed between two observations of a program:
- exits the manager can date (supervisord's log, the exit records of units the portal made):
  one event each, `crashed` (unexpected), `exited` (expected) or `oom` (over its memory limit);
- a higher restart count: `restarted` (with how many), or `oom` when PM2 restarted it for memory;
- without either, a state change: `stopped`, `started`, or `crashed`/`exited` when it went down;
- the start of a crash loop: `crashed`, naming the loop;
- an action a job ran: `started`, `stopped` or `restarted`, naming the job.
The first observation of a program is its baseline and records nothing.
"""
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from ops_portal.core import streams as core_streams
from ops_portal.inventory.models import Host

from . import alerts
from .backend import is_memory_reason
from .choices import RUNNING_STATES, EventKind, ProgramState
from .models import HostManager, Program, ProgramEvent
from .streams import group

OBSERVED = ("present", "state", "raw_state", "pids", "restarts", "exit_code", "exit_at", "started_at", "stopped_at",
            "crash_loop", "crash_loop_since", "alerted", "exit_reason", "stderr_tail", "limits", "error_count",
            "error_window", "errors_counted", "details", "updated", "group", "managed")
ACTION_EVENTS = {"start": EventKind.STARTED, "stop": EventKind.STOPPED, "restart": EventKind.RESTARTED,
                 "apply": EventKind.STARTED}
UP = (ProgramState.RUNNING, ProgramState.STARTING)
# A program that restarted CRASH_RESTARTS times within about CRASH_WINDOW seconds is in a crash loop,
# whatever its state at the moment it is looked at (supervisord's own rule, applied to every manager:
# systemd and PM2 show a crash loop only while a restart is pending).
CRASH_WINDOW, CRASH_RESTARTS = 300, 3


def _moment(seconds):
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def apply_observation(program, seen, now, job_id=None, action=None):
    """Update `program` from an observed dict (backend.observed); return the new ProgramEvents."""
    events = []

    def event(kind, detail, code=None, at=None):
        events.append(ProgramEvent(program=program, time=at or now, kind=kind, exit_code=code, detail=detail[:500],
                                   job_id=job_id))

    baseline = program.updated is None
    before_state, before_restarts = program.state, program.restarts
    details = dict(seen["details"])
    recent = _recent_restarts(program, seen, now, action, details)
    looping = seen["crash_loop"] or recent >= CRASH_RESTARTS
    last_exit_at = (program.details or {}).get("last_exit_at") or 0
    exits = [e for e in seen["exits"] if e["at"] > last_exit_at]
    details["last_exit_at"] = max([last_exit_at, *(e["at"] for e in seen["exits"])])
    reason = seen["exit_reason"]
    manager = program.get_manager_display()
    if not baseline:
        for item in exits:
            kind = EventKind.OOM if item["oom"] else EventKind.EXITED if item["expected"] else EventKind.CRASHED
            event(kind, item["how"] if kind != EventKind.OOM else reason or item["how"], item["code"],
                  _moment(item["at"]))
        delta = (seen["restarts"] or 0) - (before_restarts or 0) if before_restarts is not None else 0
        memory = max(0, (seen["memory_restarts"] or 0) - ((program.details or {}).get("memory_restarts") or 0))
        if memory:
            event(EventKind.OOM, reason or f"restarted by {manager} for going over its memory limit")
        if delta - memory > 0:
            dated_oom = any(item["oom"] for item in exits)
            kind = EventKind.OOM if is_memory_reason(reason) and not dated_oom and not memory else EventKind.RESTARTED
            last = f"; {reason}" if reason else ""
            event(kind, f"restarted {delta - memory} time(s) by {manager}{last}", seen["exit_code"])
        state = seen["state"]
        if action in ACTION_EVENTS:
            event(ACTION_EVENTS[action], f"{action} by job #{job_id}" if job_id else action)
        elif not events and state != before_state:
            if before_state in RUNNING_STATES and state == ProgramState.STOPPED:
                event(EventKind.STOPPED, f"stopped ({seen['raw_state']})")
            elif before_state not in RUNNING_STATES and state in UP:
                event(EventKind.STARTED, f"started ({seen['raw_state']})")
            elif before_state in RUNNING_STATES and state in (ProgramState.EXITED, ProgramState.BACKOFF,
                                                              ProgramState.FATAL):
                clean = seen["exit_code"] == 0 and not reason
                event(EventKind.EXITED if clean else EventKind.CRASHED, reason or f"went {state}", seen["exit_code"])
        if looping and not program.crash_loop:
            why = reason or seen["raw_state"]
            if not seen["crash_loop"]:
                why = f"restarted {recent} times in about {CRASH_WINDOW // 60} minutes; {why}"
            event(EventKind.CRASHED, f"crash loop: {why}", seen["exit_code"])
    details["memory_restarts"] = seen["memory_restarts"]
    details["restarts_recent"] = recent
    program.crash_loop_since = (program.crash_loop_since if program.crash_loop and looping else
                                now if looping else None)
    program.present = True
    program.state = seen["state"] if seen["state"] in ProgramState.values else ProgramState.UNKNOWN
    program.raw_state = seen["raw_state"]
    program.pids = seen["pids"]
    program.restarts = seen["restarts"] if seen["restarts"] is None else max(0, int(seen["restarts"]))
    program.exit_code = seen["exit_code"]
    newest = max((e["at"] for e in seen["exits"]), default=0) or seen["stopped_at"]
    program.exit_at = _moment(newest) or program.exit_at
    program.started_at = _moment(seen["started_at"])
    program.stopped_at = _moment(seen["stopped_at"])
    program.crash_loop = looping
    program.exit_reason = reason
    program.group = seen["group"][:128]
    program.managed = program.managed or seen["managed"]
    program.limits = _with_spec_limits(program, seen["limits"])
    errors = seen.get("errors")
    if errors is not None:
        program.error_count, program.error_window, program.errors_counted = errors["count"], errors["window"], now
        program.stderr_tail = seen["stderr_tail"] or errors["tail"]
    else:
        program.stderr_tail = seen["stderr_tail"] or (program.stderr_tail if program.state not in UP else [])
    program.details = details
    program.updated = now
    return events


def _recent_restarts(program, seen, now, action, details):
    """Restarts within about CRASH_WINDOW seconds, from the restart counts of past observations
    (kept in details["restart_marks"] as [unix time, count]). A count that went down (the manager
    reset it), a stop, or an action a person ran starts the count afresh."""
    moment, count = now.timestamp(), seen["restarts"]
    marks = [] if action or seen["state"] == ProgramState.STOPPED else list(
        (program.details or {}).get("restart_marks") or [])
    if count is None:
        details["restart_marks"] = []
        return 0
    if marks and count < marks[-1][1]:
        marks = []
    marks.append([moment, count])
    start = moment - CRASH_WINDOW
    before = [mark for mark in marks if mark[0] <= start]
    kept = before[-1:] + [mark for mark in marks if mark[0] > start]
    details["restart_marks"] = kept[-50:]
    return max(0, count - kept[0][1])


def _with_spec_limits(program, limits):
    """PM2 reports only its memory limit; the open-files limit of a managed app is in its spec."""
    limits = dict(limits)
    spec = program.applied_spec or program.spec or {}
    if program.manager == "pm2" and spec.get("nofile") and "nofile" not in limits:
        limits["nofile"] = {"value": spec["nofile"], "enforced_by": "kernel: RLIMIT_NOFILE, set by prlimit before "
                                                                    "the app starts"}
    return limits


def payload(program, host):
    """What the programs stream carries about a program."""
    return {"kind": "program", "id": program.pk, "host": host.pk, "host_name": host.name, "manager": program.manager,
            "name": program.name, "state": program.state, "state_label": program.get_state_display(),
            "restarts": program.restarts, "crash_loop": program.crash_loop, "exit_code": program.exit_code,
            "exit_reason": program.exit_reason, "error_count": program.error_count, "pids": program.pids[:20],
            "updated": program.updated.isoformat() if program.updated else None}


def _publish(host, programs):
    items = [payload(p, host) for p in programs]
    if items:
        transaction.on_commit(lambda: core_streams.publish_many(group(host.environment_id), items))


def store_host(host_id, reports, job_id=None, *, alert_after=alerts.DEFAULT_ALERT_AFTER):
    """Store a refresh of one host (backend.survey's reports)."""
    now = timezone.now()
    with transaction.atomic():
        host = Host.objects.select_related("environment").filter(pk=host_id).first()
        if host is None:
            return
        _store_managers(host, reports, now, job_id)
        programs = {(p.manager, p.name): p for p in Program.objects.select_for_update().filter(host=host)}
        new, changed, events, gone = [], [], [], []
        for report in reports:
            mine = {name: p for (manager, name), p in programs.items() if manager == report.manager}
            if report.available and report.programs is not None:
                for seen in report.programs:
                    program = mine.pop(seen["name"], None)
                    if program is None:
                        program = Program(host=host, manager=report.manager, name=seen["name"][:255],
                                          description=seen["description"])
                        apply_observation(program, seen, now, job_id)
                        new.append(program)
                    else:
                        events += apply_observation(program, seen, now, job_id)
                        changed.append(program)
                for program in mine.values():  # not listed any more
                    if program.managed or program.spec:
                        _mark(program, now, state=ProgramState.ABSENT, reason="its manager does not list it")
                        changed.append(program)
                    else:
                        gone.append(program)
            elif not report.available:
                for program in mine.values():
                    _mark(program, now, state=ProgramState.UNKNOWN, reason=f"{report.manager}: {report.reason}")
                    changed.append(program)
        Program.objects.bulk_create(new)
        Program.objects.bulk_update(changed, OBSERVED + ("exit_reason",), batch_size=500)
        ProgramEvent.objects.bulk_create(events, batch_size=1000)
        for program in gone:
            if program.alerted:
                alerts.resolve(program.pk, "the program is gone from its host")
        Program.objects.filter(pk__in=[p.pk for p in gone]).delete()
        raised = [p for p in new + changed if alerts.sync(p, host, now, alert_after)]
        if raised:
            Program.objects.bulk_update(raised, ["alerted"])
        _publish(host, new + changed)


def _mark(program, now, *, state, reason):
    program.present = False
    program.state = state
    program.pids = []
    program.crash_loop = False
    program.crash_loop_since = None
    program.details = {**(program.details or {}), "not_listed": reason[:500]}
    program.updated = now


def _store_managers(host, reports, now, job_id):
    existing = {m.manager: m for m in HostManager.objects.select_for_update().filter(host=host)}
    new, changed = [], []
    for report in reports:
        row = existing.get(report.manager) or HostManager(host=host, manager=report.manager)
        reason = report.reason if not report.error else f"{report.reason}; listing failed: {report.error}".strip("; ")
        row.available, row.version, row.reason = report.available, report.version[:64], reason[:500]
        row.supports, row.why_not, row.checked, row.job_id = report.supports, report.why_not, now, job_id
        (changed if row.pk else new).append(row)
    HostManager.objects.bulk_create(new)
    HostManager.objects.bulk_update(changed, ["available", "version", "reason", "supports", "why_not", "checked",
                                              "job_id"])


def store_program(program_id, seen, job_id=None, *, action=None, applied_spec=None,
                  alert_after=alerts.DEFAULT_ALERT_AFTER):
    """Store one program's status after an action (or a logs job's error count: seen=None, errors)."""
    now = timezone.now()
    with transaction.atomic():
        program = Program.objects.select_for_update().select_related("host__environment").filter(
            pk=program_id).first()
        if program is None:
            return None
        events = apply_observation(program, seen, now, job_id, action=action)
        fields = list(OBSERVED)
        if applied_spec is not None:
            program.applied_spec, program.applied_at = applied_spec, now
            fields += ["applied_spec", "applied_at"]
        alerts.sync(program, program.host, now, alert_after)
        program.save(update_fields=fields)
        ProgramEvent.objects.bulk_create(events)
        _publish(program.host, [program])
    return program


def store_errors(program_id, errors):
    """Store an error count a program.logs job took ({count, window})."""
    Program.objects.filter(pk=program_id).update(error_count=errors["count"], error_window=errors["window"][:120],
                                                 errors_counted=timezone.now())


def mark_gone(program_id, job_id=None):
    """A program.remove job removed the program from its host: resolve its alert, forget the row."""
    with transaction.atomic():
        program = Program.objects.select_for_update().filter(pk=program_id).first()
        if program is None:
            return
        if program.alerted:
            alerts.resolve(program.pk, "the program was removed")
        program.delete()


def note_scaled(program_id, count):
    """supervisord scales by rewriting the program's config: its desired spec follows, so the next
    apply keeps the new number of processes."""
    with transaction.atomic():
        program = Program.objects.select_for_update().filter(pk=program_id).first()
        if program is None:
            return
        fields = []
        for name in ("spec", "applied_spec"):
            value = getattr(program, name)
            if value:
                setattr(program, name, {**value, "numprocs": count})
                fields.append(name)
        if fields:
            program.save(update_fields=fields)
