"""The process level's job actions: scan hosts' processes (processes.scan, on hosts) and act on one
process (process.signal, stop, pause, resume, kill, on the `process` target kind).

A scan reads the portal's own machine in the worker (/proc, psutil where there is none) and SSH
hosts through the collector over the job's SSH pool, many at once (the strategy's limit). The previous scan of each
host is read once in prepare() (the task thread), so target threads only talk to hosts; they hand
their writes to the job's writer thread.

Process actions prefer the owning manager: a program's own process, owned by supervisord, systemd
or PM2 and known to the programs app (owners.py), is stopped, paused, resumed or signaled through
its manager (which would otherwise restart it, or lose track of it), and the program's status is
stored afterwards; every other process is signaled directly, by pid and start time
(schedulers/process/control.py), and the output says why no manager was used.
"""
from ops_portal.inventory import services as inventory
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.jobs.job_actions import DEFAULT_POOL, HOST, host_target, job_env, job_session, prepare_ssh, with_host
from ops_portal.monitoring import tasks as monitoring_tasks
from ops_portal.programs import metrics as program_metrics
from ops_portal.programs import services as programs
from ops_portal.programs.backend import shell_for
from schedulers import host as ssh
from schedulers.base import BackendError, CommandResult
from schedulers.process import control
from schedulers.process import inventory as scanner
from schedulers.process.base import ProcessError
from schedulers.process.pm2 import PM2Manager
from schedulers.process.shells import SSHShell
from schedulers.process.supervisor import SIGNALS as SUPERVISOR_SIGNALS
from schedulers.process.supervisor import SupervisorManager
from schedulers.process.systemd import SystemdManager

from . import owners, store
from .choices import (
    KILL_ACTION,
    MANAGED_KINDS,
    PAUSE_ACTION,
    RESUME_ACTION,
    SCAN_ACTION,
    SIGNAL_ACTION,
    STOP_ACTION,
)
from .models import Process
from .targets import PROCESSES

SCAN_TIMEOUT = 120
SHOWN_CHANGES = 10
MANAGERS = {"supervisord": SupervisorManager, "systemd": SystemdManager, "pm2": PM2Manager}
DESTRUCTIVE_SIGNALS = ("KILL", "TERM", "INT", "QUIT", "ABRT")


# Scans ---------------------------------------------------------------------------------------

def prepare_scan(runner):
    prepare_ssh(runner)
    runner.resources["previous"] = store.previous_snapshots([host.pk for host in runner.objects.values()])
    if program_metrics.watched(runner.job.environment_id):  # the scans store program samples
        runner.resources["evaluate_after"] = monitoring_tasks.EvaluateAfter(runner)


def scan(ctx):
    host = ctx.obj
    previous = ctx.resources["previous"].get(host.pk) if host is not None else None
    timeout = ctx.timeout or SCAN_TIMEOUT

    def read(session, target):
        if HOST.transport_of(target) == "local":
            return scanner.scan_local(host=target.name, previous=previous)
        return scanner.scan(SSHShell(session, target, env=job_env(ctx), on_session=ctx.remote_session),
                            previous=previous, timeout=timeout, cancel=ctx.cancel)

    host_id, job_id = (host.pk if host else None), ctx.job.pk
    try:
        snapshot = with_host(ctx, read)
    except BackendError as exc:
        if host_id is not None and not ctx.cancel.is_set():
            message = str(exc)
            ctx.after(lambda: store.store_failure(host_id, message, job_id=job_id))
        raise
    diff = scanner.diff(previous, snapshot) if previous is not None else None
    ctx.output("stdout", f"{len(snapshot.processes)} processes ({snapshot.source}, CPU {snapshot.cpu_basis}) read in "
                         f"{snapshot.elapsed:.2f}s" + (f", {snapshot.payload_bytes:,} bytes" if snapshot.payload_bytes
                                                       else ""))
    if diff is None:
        ctx.output("stdout", "first scan of this host: changes show from the next one")
    else:
        ctx.output("stdout", f"since the last scan: {len(diff.new)} new, {len(diff.gone)} gone, "
                             f"{len(diff.restarted)} restarted")
        for label, procs in (("new", diff.new), ("gone", diff.gone)):
            for proc in procs[:SHOWN_CHANGES]:
                ctx.output("stdout", f"  {label:9} {proc.pid:>7} {proc.command[:160]}")
        for old, new in diff.restarted[:SHOWN_CHANGES]:
            ctx.output("stdout", f"  restarted {old.pid:>7} → {new.pid} {new.command[:160]}")
    watched = "evaluate_after" in ctx.resources  # prepare_scan found a program metric rule
    ctx.after(lambda: store.store_scan(host_id, snapshot, diff, job_id=job_id, program_samples=watched))
    return CommandResult(exit_code=0, changed=False, data={
        "processes": len(snapshot.processes), "source": snapshot.source, "elapsed": round(snapshot.elapsed, 3),
        "bytes": snapshot.payload_bytes, "new": len(diff.new) if diff else 0, "gone": len(diff.gone) if diff else 0,
        "restarted": len(diff.restarted) if diff else 0})


# One process ---------------------------------------------------------------------------------

def prepare_process(runner):
    """One SSH pool for the job (first-seen host keys pinned on the right host), and the owning
    program of each target process, looked up here where the database may be read."""
    hosts = {process.host.name: process.host_id for process in runner.objects.values()}

    def on_host_key(target, key_line, fingerprint):
        host_id = hosts.get(target.name)
        if host_id is not None:
            runner.writer.call(lambda: inventory.pin_first_host_key(host_id, key_line))

    limit = runner.job.strategy.get("limit", DEFAULT_POOL)
    runner.resources["ssh"] = job_session(runner, min(limit, len(hosts) or 1), on_host_key)
    use_manager = runner.params.get("use_manager", True)

    def owner(process):
        if use_manager:
            return owners.owning_program(process)
        return owners.Owner(reason="the job asked for the process itself (use_manager is false)"
                            if process.owner_kind in MANAGED_KINDS else "")

    runner.resources["owners"] = {ref: owner(process) for (_, ref), process in runner.objects.items()}


def on_host(ctx, host, call):
    """call(session, target) on the process's host, noting how reaching the host went (as
    jobs.job_actions.with_host does for host targets). A refusal from the host is no failure to
    reach it."""
    session, host_id = ctx.resources["ssh"], host.pk
    if host.transport == Transport.LOCAL:
        return call(session, host_target(host))
    try:
        result = call(session, host_target(host))
    except ssh.HostKeyMismatch as exc:
        offered, message = exc.offered_key, str(exc)
        ctx.after(lambda: inventory.note_host_key_changed(host_id, offered, message))
        raise
    except ProcessError:
        ctx.after(lambda: inventory.note_reachable(host_id))
        raise
    except BackendError as exc:
        message = str(exc)
        ctx.after(lambda: inventory.note_unreachable(host_id, message))
        raise
    ctx.after(lambda: inventory.note_reachable(host_id))
    return result


def _wanted(action, params):
    """(control action, signal) for a job action."""
    return {SIGNAL_ACTION: ("signal", params.get("signal", "TERM")), STOP_ACTION: ("stop", "TERM"),
            KILL_ACTION: ("kill", "KILL"), PAUSE_ACTION: ("pause", "STOP"), RESUME_ACTION: ("resume", "CONT")}[action]


def _manager_action(action, signame):
    """(manager action, options) for a control action."""
    if action in ("signal", "kill"):
        return "signal", {"signal": signame}
    return action, {}


def act_on_process(ctx):
    process = ctx.obj
    if process is None:
        raise BackendError(f"{ctx.target.name} is no longer in the inventory: a newer scan found it ended "
                           f"(nothing was sent)")
    fingerprint = ctx.target.fingerprint
    pid, start = fingerprint["pid"], fingerprint["start_time"]
    action, signame = _wanted(ctx.job.action, ctx.params)
    grace = ctx.params.get("grace_seconds", 10)
    owner = ctx.resources["owners"].get(process.pk)
    owner = owner if owner is not None else owners.Owner()  # an Owner without a program is falsy
    timeout = ctx.timeout or 60

    def perform(session, target):
        # Tagged with the job (OPSPORTAL_JOB), its remote session noted: should this worker die
        # while the host waits out the grace period, the reaper ends what it left there.
        shell = shell_for(session, target, env=job_env(ctx), on_session=ctx.remote_session)
        if owner:
            done = _through_manager(ctx, shell, process, owner, action, signame, pid, start, timeout)
            if done is not None:
                return done
        elif owner.reason:
            ctx.output("stdout", f"signaling directly, not through a manager: {owner.reason}")
        outcome = control.act(shell, pid, start, action, signal=signame, grace=grace, timeout=timeout,
                              cancel=ctx.cancel)
        ctx.output("stdout", outcome.describe() + ("" if outcome.pidfd else " (checked without a pidfd: the host's "
                                                                           "Python or kernel has none)"))
        return outcome

    outcome = on_host(ctx, process.host, perform)
    process_id = process.pk
    if isinstance(outcome, control.Outcome):
        ended, state = outcome.ended, outcome.state
        ctx.after(lambda: _note_state(process_id, pid, start, ended, state))
        return CommandResult(exit_code=0, changed=bool(outcome.sent), data={
            "via": "signal", "sent": outcome.sent, "state": outcome.state, "ended": outcome.ended,
            "pidfd": outcome.pidfd})
    return CommandResult(exit_code=0, changed=True, data=outcome)


def _through_manager(ctx, shell, process, owner, action, signame, pid, start, timeout):
    """Act through the program's manager; None (after saying why) when that manager cannot. The
    program's status is stored afterwards, as the programs app's own actions do."""
    program = owner.program
    kind = program.manager
    # The name the manager knows this process by: one process of a supervisord group, or the unit
    # the scan found; the program's own name when the program was found by pid under another owner.
    name = process.owner_name if kind == process.owner_kind else program.name
    manager = MANAGERS[kind](shell)
    info = manager.detect()
    wanted, options = _manager_action(action, signame)
    if not info.available:
        ctx.output("stdout", f"signaling directly, not through {kind}: {info.reason}")
        return None
    if wanted not in info.supports:
        why = getattr(manager, "why_not", {}).get(wanted) or f"{kind} does not offer {wanted} on this host"
        ctx.output("stdout", f"signaling directly, not through {kind}: {why}")
        return None
    if kind == "supervisord" and wanted == "signal" and signame not in SUPERVISOR_SIGNALS:
        ctx.output("stdout", f"signaling directly, not through supervisord: it does not send SIG{signame}")
        return None
    if kind == "pm2":
        instances = manager.status(name).extra.get("instances") or []
        if len(instances) > 1:  # PM2 acts on an app, never on one of its instances
            ctx.output("stdout", f"signaling directly, not through pm2: pid {pid} is one of {len(instances)} "
                                 f"instances of {name}, and PM2 would act on all of them")
            return None
    # The manager acts on the program, whatever process runs it now: make sure it still is this one.
    control.act(shell, pid, start, "check", timeout=timeout, cancel=ctx.cancel)
    if kind == "systemd" and wanted == "signal":
        options["whom"] = "main"
    ctx.output("stdout", f"pid {pid} is the process of {kind} program {program.name}: asking {kind} to {wanted} "
                         f"{name}" + (f" with SIG{signame}" if wanted == "signal" else "")
                         + (" (its own stop signal and wait apply, not the grace given here)" if wanted == "stop"
                            else ""))
    try:
        status = manager.act(name, wanted, **options)
    except ProcessError:
        _store_program(ctx, manager, program, None, wanted)
        raise
    ctx.output("stdout", f"{kind} reports {name}: {status.state or status.raw_state}"
                         + (f" (pids {', '.join(str(p) for p in status.pids)})" if status.pids else ""))
    _store_program(ctx, manager, program, status, wanted)
    return {"via": kind, "program": program.name, "manager_action": wanted, "state": status.state,
            "pids": list(status.pids)}


def _store_program(ctx, manager, program, status, action):
    """Store the program's status (all its processes, when the manager acted on one of them), so
    its pages show the result before the next refresh; best effort after a failed action."""
    try:
        if status is None or status.name != program.name:
            status = manager.status(program.name)
    except (ProcessError, BackendError):
        return
    program_id, job_id = program.pk, ctx.job.pk
    ctx.after(lambda: programs.store_status(program_id, status, job_id=job_id, action=action))


def _note_state(process_id, pid, start, ended, state):
    """Show the result at once; the next scan has the last word. An ended process stays until then as
    dead (X): that scan counts it gone, or restarted when its manager started it again."""
    if ended or state:
        Process.objects.filter(pk=process_id, pid=pid, start_time=start).update(state="X" if ended else state)


# Registration --------------------------------------------------------------------------------

USE_MANAGER = {"name": "use_manager", "type": "bool", "default": True, "label": "Through its manager",
               "help": "When supervisord, systemd or PM2 owns the process as a program the portal knows, act "
                       "through the manager (which would otherwise restart it)."}

register(ActionSpec(
    name=SCAN_ACTION, label="Scan processes", target_kind=HOSTS.name, prepare=prepare_scan, mutating=False,
    description="List every process of each host (pid, user, command, state, CPU, memory, threads, files, "
                "ports, owner) into the inventory, with what changed since the last scan.",
    parameters=[], run=scan,
))
register(ActionSpec(
    name=SIGNAL_ACTION, label="Signal a process", target_kind=PROCESSES.name, prepare=prepare_process,
    description="Send a signal to each process (by pid and start time: a reused pid is never hit).",
    parameters=[{"name": "signal", "type": "choice", "choices": list(control.SIGNALS), "required": True,
                 "label": "Signal"}, USE_MANAGER],
    risks=lambda params, count: ["destructive"] if params.get("signal") in DESTRUCTIVE_SIGNALS else [],
    run=act_on_process,
))
register(ActionSpec(
    name=STOP_ACTION, label="Stop a process", target_kind=PROCESSES.name, prepare=prepare_process,
    description="SIGTERM, then SIGKILL when it has not ended after the grace period.",
    parameters=[{"name": "grace_seconds", "type": "int", "default": 10, "min": 0, "max": control.MAX_GRACE,
                 "label": "Grace (seconds)", "help": "How long to wait after SIGTERM before SIGKILL."}, USE_MANAGER],
    risks=lambda params, count: ["destructive"], run=act_on_process,
))
register(ActionSpec(
    name=KILL_ACTION, label="Kill a process", target_kind=PROCESSES.name, prepare=prepare_process,
    description="SIGKILL: the process ends at once, without cleaning up.", parameters=[USE_MANAGER],
    risks=lambda params, count: ["destructive"], run=act_on_process,
))
register(ActionSpec(
    name=PAUSE_ACTION, label="Pause a process", target_kind=PROCESSES.name, prepare=prepare_process,
    description="SIGSTOP: the process stops running (state T) until resumed.", parameters=[USE_MANAGER],
    run=act_on_process,
))
register(ActionSpec(
    name=RESUME_ACTION, label="Resume a process", target_kind=PROCESSES.name, prepare=prepare_process,
    description="SIGCONT: a paused process runs again.", parameters=[USE_MANAGER], run=act_on_process,
))
