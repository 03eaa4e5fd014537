"""The programs app's side of the process backends (schedulers/process): a Shell for an inventory
host, the three managers behind one name each, and what a refresh reads from a host, normalised
into plain dicts the models store. No database access here: job threads call these, and hand
what they return to the writer thread (observe.py).
"""
import re
from dataclasses import dataclass, field

from ops_portal.jobs.job_actions import HOST
from schedulers.process import supervisor
from schedulers.process.base import ACTIONS, ManagerInfo, ManagerUnavailable, ProcessError
from schedulers.process.pm2 import PM2Manager
from schedulers.process.shells import LocalShell, SSHShell
from schedulers.process.systemd import SystemdManager

from . import logs
from .choices import Manager

MANAGER_CLASSES = {Manager.SUPERVISORD: supervisor.SupervisorManager, Manager.SYSTEMD: SystemdManager,
                   Manager.PM2: PM2Manager}
LABELS = dict(Manager.choices)
# What enforces each limit, per manager (shown beside the value).
ENFORCED_BY = {
    Manager.SYSTEMD: {
        "memory_max": "cgroup (MemoryMax=): the kernel kills the unit's processes over it",
        "cpu_quota": "cgroup (CPUQuota=): the kernel throttles the unit to this share of one CPU",
        "tasks_max": "cgroup (TasksMax=): the kernel refuses new processes and threads over it",
        "nofile": "kernel: RLIMIT_NOFILE (LimitNOFILE=)",
    },
    Manager.PM2: {
        "memory_max": "PM2 (max_memory_restart): its daemon restarts the app when over it, checked every "
                      "PM2_WORKER_INTERVAL (30 s by default)",
        "nofile": "kernel: RLIMIT_NOFILE, set by prlimit before the app starts",
    },
}
_MEMORY = re.compile(r"memory limit", re.I)
_EXIT_STATUS = re.compile(r"^exit status (\d+)")


def shell_for(session, target, *, env=None, on_session=None):
    """The Shell of a backend target: the portal's own machine as subprocesses, others over the
    job's SSH pool (the transport is the target's, never the caller's choice). Over SSH, env tags
    every command (the job's OPSPORTAL_JOB) and on_session learns each stream's remote session."""
    if HOST.transport_of(target) == "local":
        return LocalShell(target.name)
    return SSHShell(session, target, env=env, on_session=on_session)


def manager_for(shell, name):
    return MANAGER_CLASSES[name](shell)


def why_not(manager, info: ManagerInfo) -> dict:
    """{action: why it is not offered} for every action the manager does not offer on this host."""
    own = dict(supervisor.NOT_OFFERED) if info.name == Manager.SUPERVISORD else dict(getattr(manager, "why_not", {}))
    label = LABELS[info.name]
    reasons = {}
    for action in sorted(ACTIONS - set(info.supports)):
        if not info.available:
            reasons[action] = f"{label} is not available: {info.reason}"
        else:
            reasons[action] = own.get(action) or f"{label} does not offer {action} on this host"
    return reasons


# Refresh ------------------------------------------------------------------------------------

@dataclass
class ManagerReport:
    """One manager on one host: whether it is there, what it offers, and its programs (observed)."""

    manager: str
    available: bool
    version: str = ""
    reason: str = ""
    supports: list = field(default_factory=list)
    why_not: dict = field(default_factory=dict)
    programs: list | None = None  # observed dicts; None when they could not be listed
    error: str = ""  # listing failed although the manager answered


def survey(shell, *, watch=None) -> list[ManagerReport]:
    """Detect every manager on the host and list its programs. `watch` ({manager: [names]}): the
    programs whose stderr (journal) is also read for error counts and tails (portal-managed ones).

    A host that cannot be reached raises BackendError; a manager that is missing or down is a
    report with available False and the reason.
    """
    watch = watch or {}
    reports = []
    for name, cls in MANAGER_CLASSES.items():
        manager = cls(shell)
        try:
            info = manager.detect()
        except ProcessError as exc:  # ManagerUnavailable too; an unreachable host is a BackendError
            info = ManagerInfo(name, False, reason=str(exc))
        report = ManagerReport(name, info.available, info.version, info.reason[:500], sorted(info.supports),
                               why_not(manager, info))
        if info.available:
            try:
                statuses = manager.programs()
                if name == Manager.SUPERVISORD:
                    statuses = supervisor.by_program(statuses)
                report.programs = [observed(status) for status in statuses]
                for item in report.programs:
                    if item["name"] in watch.get(name, ()):
                        item["errors"] = error_window(manager, name, item["name"])
            except ManagerUnavailable as exc:
                report.available, report.reason = False, str(exc)[:500]
                report.why_not = {action: f"{LABELS[name]} is not available: {exc}" for action in ACTIONS}
                report.supports = []
            except ProcessError as exc:
                report.error = str(exc)[:500]
        reports.append(report)
    return reports


def error_window(manager, name, program, lines=logs.ERROR_WINDOW):
    """Count error lines among the program's last stderr lines (its journal under systemd); None
    when they cannot be read."""
    try:
        if name == Manager.SYSTEMD:
            entries = manager.entries(program, lines=lines)
            texts = [entry["message"] for entry in entries]
            count = logs.count_errors(texts, [entry.get("priority") for entry in entries])
            window = f"last {lines} journal lines"
        else:
            texts = manager.logs(program, stream="stderr", lines=lines)
            count = logs.count_errors(texts)
            window = f"last {lines} lines of stderr"
    except ProcessError:
        return None
    return {"count": count, "window": window, "tail": [line[:500] for line in texts[-20:]]}


# Normalising a backend status ------------------------------------------------------------------

def observed(status) -> dict:
    """The fields a Program row stores from a backend ProgramStatus, the same for every manager."""
    extra = dict(status.extra)
    manager = status.manager
    if manager == Manager.SUPERVISORD:
        reason = extra.get("exit_reason") or extra.get("spawnerr") or ""
        if status.state in ("backoff", "fatal") and status.description:
            reason = reason or status.description
    else:
        reason = extra.get("reason") or ""
    exits = _exits(status, reason)
    details = {key: value for key, value in extra.items()
               if key not in ("stderr_tail", "last_exits", "crash_loop", "reason", "exit_reason", "managed")}
    return {
        "name": status.name, "group": status.group if status.group != status.name else "",
        "state": status.state or "unknown", "raw_state": (status.raw_state or "")[:128],
        "pids": [int(pid) for pid in status.pids if pid], "restarts": status.restarts,
        "exit_code": status.exit_code, "started_at": status.started_at, "stopped_at": status.stopped_at,
        "crash_loop": bool(extra.get("crash_loop")), "exit_reason": str(reason)[:500],
        "stderr_tail": [str(line)[:500] for line in (extra.get("stderr_tail") or [])][-20:],
        "limits": _limits(manager, status.limits), "details": details, "exits": exits,
        "managed": bool(extra.get("managed")), "description": (status.description or "")[:255],
        "memory_restarts": extra.get("memory_restarts") or 0,
    }


def _limits(manager, limits):
    normal = {}
    for key, value in (limits or {}).items():
        if isinstance(value, dict):
            normal[key] = {"value": value.get("value"), "enforced_by": value.get("enforced_by", "")}
        elif value not in (None, ""):
            normal[key] = {"value": value, "enforced_by": ENFORCED_BY.get(manager, {}).get(key, "")}
    return normal


def _exits(status, reason):
    """The exits the manager can date: [{at, how, code, expected, oom}] (oldest first)."""
    extra = status.extra
    exits = []
    if status.manager == Manager.SUPERVISORD:
        records = extra.get("last_exits") or []
        for index, record in enumerate(records):
            how = str(record.get("how", ""))
            match = _EXIT_STATUS.match(how)
            last = index == len(records) - 1
            exits.append({"at": float(record.get("at") or 0), "how": how[:300],
                          "code": int(match.group(1)) if match else None, "expected": "not expected" not in how,
                          "oom": last and reason.startswith("stopped for going over")})
    elif status.manager == Manager.SYSTEMD:
        record = extra.get("last_exit")
        # A clean stop is a state change, not an exit to report; failures and OOM kills are.
        if record and record.get("time") and (record.get("result") not in ("success", "-") or record.get("oom_kills")):
            code = record.get("status")
            exits.append({"at": float(record["time"]),
                          "how": f"{record.get('result')}: {record.get('code')} {code}"[:300],
                          "code": int(code) if record.get("code") == "exited" and str(code).isdigit() else None,
                          "expected": False, "oom": bool(record.get("oom_kills"))})
    return exits


def is_memory_reason(text):
    return bool(_MEMORY.search(text or ""))
