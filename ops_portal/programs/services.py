"""Everything that changes programs or launches their jobs.

Who may do what (the role table, accounts/choices.py): viewers see programs, their history and the
output of logs jobs; operators operate them (start, stop, restart, reload, signal, pause, resume,
scale, enable, disable, freeze, thaw, logs, refresh); administrators manage their configuration:
a portal-managed program's spec (create, change), writing it to the host (program.apply), removing
it (program.remove) and installing supervisord. The job actions that change configuration say
`needs="manage"`, so the jobs engine refuses them to operators on every path (this module, the
jobs API, templates, schedules, relaunches).

Actions are offered only where the host's manager supports them: anything else is refused at
launch with the manager's own reason (400), before a job exists.

For the processes app (which sits above this one): `program_for_process()` finds the program that
owns a process, `launch_operation()` acts on it through its manager as a program job, and
`store_status()` keeps the program fresh after a process job acted through its manager itself.
"""
import json

from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import require_on
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.system import launch_everywhere

from . import backend, observe, specs
from .choices import OPERATIONS, SIGNALS, Manager, ProgramState
from .job_actions import (
    APPLY_ACTION,
    INSTALL_ACTION,
    LOGS_ACTION,
    MAX_FOLLOW_SECONDS,
    REFRESH_ACTION,
    REMOVE_ACTION,
    action_name,
    parse_time,
)
from .models import HostManager, Program

ACTION_TIMEOUT = 900
MAX_SCALE = {Manager.SUPERVISORD: 200, Manager.PM2: 64}
LOG_MODES = ("tail", "follow", "search")


# The desired spec (administrators) -------------------------------------------------------------

def create_program(actor, *, host, manager, name, spec, description=""):
    """Store a new portal-managed program (not yet on its host: launch_apply writes it there)."""
    if manager not in Manager.values:
        raise ValidationError({"manager": [f"Must be one of {', '.join(Manager.values)}."]})
    values = specs.clean_spec(manager, name, spec)
    return create_object(actor, Program, {"host": host, "manager": manager, "name": name, "spec": values,
                                          "managed": True, "description": description, "state": ProgramState.ABSENT})


def update_program(actor, program, **fields):
    """Change a program's description, or the spec of a portal-managed one (applied by launch_apply)."""
    changes = {}
    if "description" in fields:
        changes["description"] = fields["description"]
    if "spec" in fields:
        if not program.managed:
            raise ValidationError({"spec": ["This program is configured outside the portal; change it where it "
                                            "is defined (only portal-managed programs have a spec)."]})
        changes["spec"] = specs.clean_spec(program.manager, program.name, fields["spec"])
    unknown = sorted(set(fields) - {"description", "spec"})
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in unknown})
    return update_object(actor, program, changes)


# Jobs ---------------------------------------------------------------------------------------

def _launch(actor, program, action, values, name, timeout=ACTION_TIMEOUT):
    return launch_adhoc(actor, environment=program.host.environment, action=action, values=values,
                        selector={"kind": "program", "ids": [str(program.pk)]}, name=name,
                        timeout_seconds=timeout, predefined=True)


def manager_of(program):
    return HostManager.objects.filter(host_id=program.host_id, manager=program.manager).first()


def refusal(program, action, manager=None):
    """Why `action` cannot run on the program now, in plain words ("" when it can)."""
    manager = manager if manager is not None else manager_of(program)
    if manager is None:
        return (f"{program.get_manager_display()} on {program.host.name} has not been checked yet: refresh the "
                "host's programs first")
    reason = manager.refusal(action)
    if reason:
        return reason
    if action in OPERATIONS or action == "logs":
        if program.state == ProgramState.ABSENT:
            return f"{program.name} is not on {program.host.name} yet: apply its configuration first"
        if action == "scale" and program.manager == Manager.SUPERVISORD and not program.managed:
            return ("supervisord scales by rewriting the program's configuration, which was not written by the "
                    "portal; change numprocs where it is defined")
    if action == "remove" and not program.managed:
        return "only programs whose configuration the portal wrote can be removed; stop it instead"
    return ""


def _refuse(program, action, manager=None):
    reason = refusal(program, action, manager)
    if reason:
        raise ValidationError({"operation" if action in OPERATIONS else "action": [reason]})


def launch_operation(actor, program, operation, *, signal=None, count=None):
    """Launch program.<operation> on one program (operators). `signal` for signal, `count` for scale."""
    if actor.user is not None:
        require_on(actor.user, Action.OPERATE, program)
    if operation not in OPERATIONS:
        raise ValidationError({"operation": [f"Must be one of {', '.join(OPERATIONS)}."]})
    _refuse(program, operation)
    values = {}
    if operation == "signal":
        name = str(signal or "TERM").upper().removeprefix("SIG")
        if name not in SIGNALS:
            raise ValidationError({"signal": [f"Must be one of {', '.join(SIGNALS)}."]})
        values["signal"] = name
    elif operation == "scale":
        limit = MAX_SCALE.get(program.manager, 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= limit:
            raise ValidationError({"count": [f"Give a whole number of processes from 1 to {limit}."]})
        values["count"] = count
    return _launch(actor, program, action_name(operation), values,
                   f"{operation.capitalize()} {program.name} on {program.host.name}")


def launch_apply(actor, program):
    """Write a portal-managed program's desired spec to its host (administrators)."""
    if actor.user is not None:
        require_on(actor.user, Action.MANAGE, program)
    if not program.managed or not program.spec:
        raise ValidationError({"spec": ["This program is not managed by the portal: it has no spec to apply."]})
    _refuse(program, "apply")
    values = specs.clean_spec(program.manager, program.name, program.spec)
    return _launch(actor, program, APPLY_ACTION, {"spec": json.dumps(values, sort_keys=True)},
                   f"Apply {program.name} on {program.host.name}")


def remove_program(actor, program):
    """Remove a portal-managed program from its host (a program.remove job, administrators), or,
    when it never reached its host, forget its spec at once (returns None)."""
    if actor.user is not None:
        require_on(actor.user, Action.MANAGE, program)
    if program.managed and not program.present and program.applied_at is None:
        delete_object(actor, program)
        return None
    _refuse(program, "remove")
    return _launch(actor, program, REMOVE_ACTION, {}, f"Remove {program.name} from {program.host.name}")


def launch_logs(actor, program, *, mode="tail", stream="stdout", lines=200, duration=300, text="", since=None,
                until=None):
    """Launch a program.logs job (operators): tail, follow live for `duration` seconds, or search."""
    if actor.user is not None:
        require_on(actor.user, Action.OPERATE, program)
    errors = {}
    if mode not in LOG_MODES:
        errors["mode"] = [f"Must be one of {', '.join(LOG_MODES)}."]
    if stream not in ("stdout", "stderr"):
        errors["stream"] = ["Must be stdout or stderr."]
    times = {}
    for key, value in (("since", since), ("until", until)):
        try:
            times[key] = parse_time(value.isoformat() if hasattr(value, "isoformat") else value)
        except (ValueError, TypeError):
            errors[key] = ["Give an ISO 8601 date and time or unix seconds."]
    if not errors and None not in (times["since"], times["until"]) and times["since"] > times["until"]:
        errors["until"] = ["Must be after since."]
    if errors:
        raise ValidationError(errors)
    _refuse(program, "logs")
    values = {"mode": mode, "stream": stream, "lines": lines, "duration": duration, "text": text or ""}
    for key, value in times.items():
        if value is not None:
            values[key] = f"{value:.6f}".rstrip("0").rstrip(".")
    timeout = (min(int(duration), MAX_FOLLOW_SECONDS) + 120) if mode == "follow" and isinstance(duration, int) \
        else ACTION_TIMEOUT
    what = {"tail": "Tail", "follow": "Follow", "search": "Search"}[mode]
    return _launch(actor, program, LOGS_ACTION, values, f"{what} logs of {program.name} on {program.host.name}",
                   timeout=timeout)


def launch_refresh(actor, environment, hosts=None):
    """Launch programs.refresh on some hosts of an environment (all enabled ones by default)."""
    selector = {"names": sorted({h.name for h in hosts})} if hosts else {"all": True}
    return launch_adhoc(actor, environment=environment, action=REFRESH_ACTION, values={}, selector=selector,
                        name="Refresh programs", predefined=True, timeout_seconds=ACTION_TIMEOUT)


def launch_install(actor, host):
    """Install supervisord on a host that has no process manager (administrators)."""
    if actor.user is not None:
        require_on(actor.user, Action.MANAGE, host)
    if host.transport == Transport.LOCAL:
        raise ValidationError({"host": ["supervisord is installed over SSH; install it on the portal's own machine "
                                        "with its package manager."]})
    found = [m.get_manager_display() for m in HostManager.objects.filter(host=host, available=True)]
    if found:
        raise ValidationError({"host": [f"{host.name} already has {', '.join(found)}: nothing to install."]})
    return launch_adhoc(actor, environment=host.environment, action=INSTALL_ACTION, values={},
                        selector={"names": [host.name]}, name=f"Install supervisord on {host.name}", predefined=True,
                        timeout_seconds=ACTION_TIMEOUT)


def refresh_everywhere(limit=20):
    """The periodic refresh: one programs.refresh job per environment with enabled hosts."""
    return launch_everywhere(REFRESH_ACTION, name="Refresh programs", limit=limit)


# For other apps and pages --------------------------------------------------------------------

def program_for_process(host, pid, owner_kind, owner_name):
    """The Program that owns a process, or None: matched by the owner a process scan found
    (schedulers.process.inventory: ("supervisord", "group:process" or "name"), ("systemd",
    "unit.service"), ("pm2", "app")), else by the pid its manager reported last."""
    host_id = getattr(host, "pk", host)
    programs = Program.objects.filter(host_id=host_id).select_related("host__environment")
    name = None
    if owner_kind == Manager.SUPERVISORD and owner_name:
        group, _, process = owner_name.partition(":")
        found = programs.filter(manager=owner_kind, name__in=[owner_name, group, process or group]).first()
        if found is not None:
            return found
    elif owner_kind == Manager.SYSTEMD and owner_name:
        name = owner_name.removesuffix(".service")
    elif owner_kind == Manager.PM2 and owner_name:
        name = owner_name
    if name is not None:
        found = programs.filter(manager=owner_kind, name=name).first()
        if found is not None:
            return found
    if isinstance(pid, int) and pid > 0:
        return programs.filter(pids__contains=[pid]).first()
    return None


def offered(program, manager=None):
    """[(operation, refusal)] for the program's pages: every operation, with why it is not offered."""
    manager = manager if manager is not None else manager_of(program)
    return [(operation, refusal(program, operation, manager)) for operation in OPERATIONS]


def store_status(program_id, status, *, job_id=None, action=None):
    """Store a program's status (a backend ProgramStatus) after another app's job acted through its
    manager, as the program's own actions do (observe.store_program: events, alerts, the stream).
    Called from the job's writer thread."""
    return observe.store_program(program_id, backend.observed(status), job_id, action=action)
