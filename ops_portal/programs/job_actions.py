"""The programs app's job actions: refresh what managers run on hosts, act on programs, write and
remove portal-managed programs, read and follow their logs, and install supervisord.

Programs live on inventory hosts: the host backend's per-job SSH pool reaches them (the portal's
own machine through subprocesses), and reachability is noted on the host as for every host job.
Every action that changes a program stores its status afterwards (what a refresh would see of
it), so the pages show the result without waiting for the next periodic refresh.
"""
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.db.models import Q

from ops_portal.inventory import services as inventory
from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.jobs.job_actions import DEFAULT_POOL, HOST, job_env, job_session, prepare_ssh, ssh_only, with_host
from schedulers.base import BackendError, CancelToken, CommandResult
from schedulers.process import supervisor
from schedulers.process.base import ProcessError

from . import alerts, backend, logs, observe, specs
from .choices import OPERATIONS, SIGNALS, Manager
from .models import Program
from .targets import PROGRAMS

REFRESH_ACTION = "programs.refresh"
INSTALL_ACTION = "manager.install_supervisor"
LOGS_ACTION = "program.logs"
APPLY_ACTION = "program.apply"
REMOVE_ACTION = "program.remove"
MAX_FOLLOW_SECONDS = 3600
# Unix seconds, or an ISO 8601 date with an optional time and offset.
TIME_PATTERN = (r"[0-9]{1,12}(\.[0-9]{1,6})?"
                r"|[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?"
                r"(Z|[+-][0-9]{2}:?[0-9]{2})?")


def action_name(operation):
    return f"program.{operation}"


# Reaching a program's host -------------------------------------------------------------------

def prepare_programs(runner):
    """The host backend's SSH pool for a job over programs; first-seen host keys pinned on their hosts."""
    hosts_by_name = {program.host.name: program.host_id for program in runner.objects.values()}

    def on_host_key(target, key_line, fingerprint):
        host_id = hosts_by_name.get(target.name)
        if host_id is not None:
            runner.writer.call(lambda: inventory.pin_first_host_key(host_id, key_line))

    limit = runner.job.strategy.get("limit", DEFAULT_POOL)
    runner.resources["ssh"] = job_session(runner, min(limit, len(hosts_by_name) or 1), on_host_key)


@dataclass
class _OnHost:
    """A target context seen from the program's host, for jobs.job_actions.with_host."""

    obj: object
    resources: dict
    after: object
    target: object
    after_each: object


def _program(ctx):
    if ctx.obj is None:
        raise BackendError(f"program {ctx.target.name} is no longer in the inventory")
    return ctx.obj


def on_manager(ctx, program, call):
    """call(manager) with the program's manager on its host; reachability noted on the host."""
    view = _OnHost(program.host, ctx.resources, ctx.after, ctx.target, ctx.after_each)
    return with_host(view, lambda session, target: call(backend.manager_for(
        backend.shell_for(session, target, env=job_env(ctx), on_session=ctx.remote_session), program.manager)))


def _describe(program, seen):
    pids = ", ".join(map(str, seen["pids"][:10])) or "no process"
    text = f"{program.name} ({program.manager}): {seen['state']} [{seen['raw_state']}], {pids}"
    if seen["restarts"] is not None:
        text += f", {seen['restarts']} restarts"
    if seen["exit_reason"]:
        text += f"; {seen['exit_reason']}"
    return text


def _store(ctx, program, seen, **options):
    program_id, job_id = program.pk, ctx.job.pk
    ctx.after(lambda: observe.store_program(program_id, seen, job_id, **options))


def _status_after_failure(ctx, program, manager):
    """After a failed action, store what the program looks like now (best effort)."""
    try:
        seen = backend.observed(manager.status(program.name))
    except (ProcessError, BackendError):
        return
    _store(ctx, program, seen)


# Operations ----------------------------------------------------------------------------------

def _operation(operation):
    def run(ctx):
        program = _program(ctx)
        options = {}
        if operation == "signal":
            options["signal"] = ctx.params["signal"]
        elif operation == "scale":
            options["instances" if program.manager == Manager.PM2 else "numprocs"] = ctx.params["count"]

        def call(manager):
            try:
                status = manager.act(program.name, operation, **options)
            except ProcessError:
                _status_after_failure(ctx, program, manager)
                raise
            if operation == "scale" and program.manager == Manager.SUPERVISORD:
                # supervisord rewrote the program's section and starts its processes: wait for them.
                status = _settle(ctx, manager, program, (program.spec or {}).get("startsecs", 1), status)
            return status

        seen = backend.observed(on_manager(ctx, program, call))
        ctx.output("stdout", _describe(program, seen))
        _store(ctx, program, seen, action=operation)
        if operation == "scale" and program.manager == Manager.SUPERVISORD:
            program_id, count = program.pk, ctx.params["count"]
            ctx.after(lambda: observe.note_scaled(program_id, count))
        return CommandResult(exit_code=0, changed=True, data={"state": seen["state"], "pids": seen["pids"][:50]})

    return run


# Configuration -------------------------------------------------------------------------------

def apply_program(ctx):
    program = _program(ctx)
    try:
        values = specs.clean_spec(program.manager, program.name, json.loads(ctx.params["spec"]))
    except ValueError as exc:
        return CommandResult(error=f"the spec is not JSON ({exc}); nothing was changed")
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        return CommandResult(error=f"the spec was refused before anything ran: {problems}")
    spec = specs.program_spec(program.name, values)

    def call(manager):
        try:
            changed = manager.apply(spec)
        except ProcessError:
            _status_after_failure(ctx, program, manager)
            raise
        status = manager.status(program.name)
        if program.manager == Manager.SUPERVISORD and spec.autostart:
            status = _settle(ctx, manager, program, spec.startsecs, status)
        return changed, status

    changed, status = on_manager(ctx, program, call)
    seen = backend.observed(status)
    ctx.output("stdout", f"{'changed' if changed else 'unchanged'}: {program.name} under {program.manager}")
    ctx.output("stdout", _describe(program, seen))
    _store(ctx, program, seen, action="apply" if changed else None, applied_spec=values)
    return CommandResult(exit_code=0, changed=changed, data={"state": seen["state"], "changed": changed})


def _settle(ctx, manager, program, startsecs, status):
    """Wait until supervisord has the program RUNNING (it is STARTING for startsecs), as the systemd
    and PM2 managers do in apply(); a program that does not come up fails the job with its stderr."""
    deadline = time.monotonic() + startsecs + 10
    while status.state in ("starting", "backoff") and time.monotonic() < deadline and not ctx.cancel.is_set():
        time.sleep(0.5)
        status = manager.status(program.name)
    if status.state not in ("running", "paused"):
        seen = backend.observed(status)
        _store(ctx, program, seen)
        tail = " | ".join(seen["stderr_tail"][-10:])
        raise ProcessError(f"{program.name} did not come up on {program.host.name}: {status.state}"
                           + (f" ({seen['exit_reason']})" if seen["exit_reason"] else "")
                           + (f"; stderr: {tail}" if tail else ""))
    return status


def remove_program(ctx):
    program = _program(ctx)
    existed = on_manager(ctx, program, lambda manager: manager.remove(program.name))
    ctx.output("stdout", f"removed {program.name} from {program.manager}" if existed
               else f"{program.name} was not configured under {program.manager}; nothing to remove")
    program_id, job_id = program.pk, ctx.job.pk
    ctx.after(lambda: observe.mark_gone(program_id, job_id))
    return CommandResult(exit_code=0, changed=existed)


# Logs ----------------------------------------------------------------------------------------

def parse_time(value):
    """Unix seconds from unix seconds or an ISO 8601 date/time (UTC when it names no offset)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _read(manager, program, stream, lines, since=None, until=None):
    """[(text, priority)] of the program's last lines (the journal under systemd, with priorities)."""
    if program.manager == Manager.SYSTEMD:
        entries = manager.entries(program.name, lines=lines, since=since, until=until)
        return [(entry["message"], entry.get("priority")) for entry in entries]
    return [(text, None) for text in manager.logs(program.name, stream=stream, lines=lines)]


def _follow(ctx, manager, program, stream, duration):
    stop = CancelToken()
    count = [0]

    def line(source, text):
        count[0] += 1
        ctx.output(source, text)

    def watch():
        deadline = time.monotonic() + duration
        while not stop.is_set() and time.monotonic() < deadline:
            if ctx.cancel.wait(0.25):
                break
        stop.cancel("canceled" if ctx.cancel.is_set() else "duration")

    watcher = threading.Thread(target=watch, name=f"job-{ctx.job.pk}-follow", daemon=True)
    watcher.start()
    try:
        manager.follow(program.name, on_line=line, cancel=stop, stream=stream)
    finally:
        stop.cancel(stop.reason or "ended")
        watcher.join(timeout=5)
    return count[0]


def program_logs(ctx):
    program = _program(ctx)
    params = ctx.params
    mode, stream, lines = params["mode"], params["stream"], params["lines"]
    journal = program.manager == Manager.SYSTEMD
    if journal and stream == "stderr":
        ctx.info("The journal keeps a unit's stdout and stderr together: showing both.")

    def call(manager):
        if mode == "follow":
            return _follow(ctx, manager, program, stream, min(params["duration"], MAX_FOLLOW_SECONDS)), None
        since, until = parse_time(params.get("since")), parse_time(params.get("until"))
        read = _read(manager, program, stream, lines, since, until) if journal else _read(manager, program, stream,
                                                                                           lines)
        return None, (read, since, until)

    followed, found = on_manager(ctx, program, call)
    if mode == "follow":
        if ctx.cancel.is_set():
            return CommandResult(canceled=True, data={"lines": followed})
        ctx.info(f"Followed {program.name} for up to {params['duration']} s: {followed} lines.")
        return CommandResult(exit_code=0, changed=False, data={"lines": followed})
    read, since, until = found
    texts = [text for text, _ in read]
    if mode == "search":
        if journal:  # journalctl applied the time range; the text is matched here
            matched, note = logs.search(texts, text=params.get("text") or "")
        else:
            matched, note = logs.search(texts, text=params.get("text") or "", since=since, until=until)
        if note:
            ctx.info(note[:1].upper() + note[1:] + ".")
        errors = logs.count_errors(matched)
        for text in matched:
            ctx.output(stream, text)
        ctx.info(f"{len(matched)} of the last {len(read)} lines match; {errors} error lines among them.")
        return CommandResult(exit_code=0, changed=False, data={"lines": len(matched), "read": len(read),
                                                               "errors": errors, "note": note})
    errors = logs.count_errors(texts, [priority for _, priority in read])
    for text in texts:
        ctx.output(stream, text)
    ctx.info(f"{len(texts)} lines, {errors} error lines.")
    if journal or stream == "stderr":
        window = f"last {lines} journal lines" if journal else f"last {lines} lines of stderr"
        program_id = program.pk
        ctx.after(lambda: observe.store_errors(program_id, {"count": errors, "window": window}))
    return CommandResult(exit_code=0, changed=False, data={"lines": len(texts), "errors": errors})


# Refresh and install -------------------------------------------------------------------------

def prepare_refresh(runner):
    prepare_ssh(runner)
    host_ids = [t.ref_id for t in runner.targets]
    watch = {}
    rows = Program.objects.filter(host_id__in=host_ids).filter(Q(managed=True) | Q(spec__isnull=False))
    for host_id, manager, name in rows.values_list("host_id", "manager", "name"):
        watch.setdefault(host_id, {}).setdefault(manager, []).append(name)
    runner.resources["program_watch"] = watch


def _report_lines(ctx, reports):
    for report in reports:
        if not report.available:
            ctx.output("stdout", f"{report.manager}: not available — {report.reason}")
            continue
        states = {}
        for seen in report.programs or []:
            states[seen["state"]] = states.get(seen["state"], 0) + 1
        summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "no programs"
        ctx.output("stdout", f"{report.manager} {report.version}: {len(report.programs or [])} programs ({summary})"
                   + (f"; listing failed: {report.error}" if report.error else ""))
        for seen in report.programs or []:
            if seen["crash_loop"]:
                ctx.output("stderr", f"{report.manager} {seen['name']}: crash loop — {seen['exit_reason']}")


def _survey_and_store(ctx, host, alert_after):
    watch = ctx.resources.get("program_watch", {}).get(host.pk, {})
    reports = with_host(ctx, lambda session, target: backend.survey(
        backend.shell_for(session, target, env=job_env(ctx)), watch=watch))
    _report_lines(ctx, reports)
    host_id, job_id = host.pk, ctx.job.pk
    ctx.after(lambda: observe.store_host(host_id, reports, job_id, alert_after=alert_after))
    return reports


def refresh(ctx):
    host = ctx.obj
    if host is None:
        raise BackendError(f"host {ctx.target.name} is no longer in the inventory")
    reports = _survey_and_store(ctx, host, ctx.params["alert_after"])
    available = [r.manager for r in reports if r.available]
    if not available:
        ctx.info(f"No process manager on {host.name}: supervisord can be installed ({INSTALL_ACTION}).")
    return CommandResult(exit_code=0, changed=False, data={
        "managers": {r.manager: {"available": r.available, "version": r.version,
                                 "programs": len(r.programs or [])} for r in reports}})


def install_supervisor(ctx):
    host = ctx.obj
    if host is None:
        raise BackendError(f"host {ctx.target.name} is no longer in the inventory")
    plan = supervisor.install_plan()

    def run(session, target):
        ssh_only(target, f"supervisord is installed over SSH; {target.name} is the portal's own machine: install "
                         "it there with the system's package manager")
        return HOST.run_command(session, target, plan["values"]["command"], on_line=ctx.output, cancel=ctx.cancel,
                                timeout=ctx.timeout or plan["timeout"], env=job_env(ctx), on_session=ctx.remote_session)

    result = with_host(ctx, run)
    if result.ok:
        ctx.info("Installed; checking the host's managers again.")
        _survey_and_store(ctx, host, alerts.DEFAULT_ALERT_AFTER)
        result.changed = True
    return result


# Registration --------------------------------------------------------------------------------

OPERATION_LABELS = {
    "start": "Start", "stop": "Stop", "restart": "Restart", "reload": "Reload", "signal": "Send a signal",
    "pause": "Pause (SIGSTOP)", "resume": "Resume (SIGCONT)", "scale": "Scale", "enable": "Enable at boot",
    "disable": "Disable at boot", "freeze": "Freeze (cgroup)", "thaw": "Thaw (cgroup)",
}
OPERATION_PARAMETERS = {
    "signal": [{"name": "signal", "type": "choice", "choices": list(SIGNALS), "default": "TERM", "label": "Signal"}],
    "scale": [{"name": "count", "type": "int", "required": True, "min": 1, "max": 200,
               "label": "Processes (supervisord numprocs, PM2 instances)"}],
}

for _operation_name in OPERATIONS:
    register(ActionSpec(
        name=action_name(_operation_name), label=f"Program: {OPERATION_LABELS[_operation_name].lower()}",
        target_kind=PROGRAMS.name, prepare=prepare_programs, parameters=OPERATION_PARAMETERS.get(_operation_name, []),
        description=f"{OPERATION_LABELS[_operation_name]} programs through their manager (supervisord, systemd or "
                    "PM2); the program's status is stored afterwards.",
        run=_operation(_operation_name),
    ))
register(ActionSpec(
    name=APPLY_ACTION, label="Program: write its configuration", target_kind=PROGRAMS.name, prepare=prepare_programs,
    needs="manage",
    description="Write a portal-managed program's configuration from its spec (supervisord program section, "
                "systemd unit, PM2 ecosystem file); reread and restart only when it changed.",
    parameters=[{"name": "spec", "type": "text", "required": True, "max_length": 65536,
                 "label": "Spec (JSON)", "help": "The fields of the program's spec; checked before anything runs."}],
    risks=lambda params, count: ["config_change"], run=apply_program,
))
register(ActionSpec(
    name=REMOVE_ACTION, label="Program: remove", target_kind=PROGRAMS.name, prepare=prepare_programs, needs="manage",
    description="Stop a portal-managed program and remove its configuration from its manager.",
    parameters=[], risks=lambda params, count: ["destructive"], run=remove_program,
))
register(ActionSpec(
    name=LOGS_ACTION, label="Program: logs", target_kind=PROGRAMS.name, prepare=prepare_programs, mutating=False,
    description="Tail a program's stdout or stderr (the journal under systemd), follow it live for a while, or "
                "search it by text and time range; counts error lines.",
    parameters=[
        {"name": "mode", "type": "choice", "choices": ["tail", "follow", "search"], "default": "tail"},
        {"name": "stream", "type": "choice", "choices": ["stdout", "stderr"], "default": "stdout"},
        {"name": "lines", "type": "int", "default": 200, "min": 1, "max": 10000, "label": "Lines"},
        {"name": "duration", "type": "int", "default": 300, "min": 1, "max": MAX_FOLLOW_SECONDS,
         "label": "Follow for (seconds)"},
        {"name": "text", "type": "string", "max_length": 200, "label": "Text to search for"},
        {"name": "since", "type": "string", "pattern": TIME_PATTERN, "max_length": 40,
         "help": "ISO 8601 date and time (UTC unless it says) or unix seconds"},
        {"name": "until", "type": "string", "pattern": TIME_PATTERN, "max_length": 40},
    ],
    run=program_logs,
))
register(ActionSpec(
    name=REFRESH_ACTION, label="Refresh programs", target_kind=HOSTS.name, prepare=prepare_refresh, mutating=False,
    description="Find which process managers each host has (supervisord, systemd, PM2) and what they run: states, "
                "restarts, exits, crash loops, limits; error counts of portal-managed programs.",
    parameters=[{"name": "alert_after", "type": "int", "default": alerts.DEFAULT_ALERT_AFTER, "min": 0,
                 "max": 86400, "label": "Alert a crash loop after (seconds)"}],
    run=refresh,
))
register(ActionSpec(
    name=INSTALL_ACTION, label="Install supervisord", target_kind=HOSTS.name, prepare=prepare_ssh, needs="manage",
    description=supervisor.install_plan()["description"] + "; then check the host's managers again.",
    parameters=[], risks=lambda params, count: ["package_install"], run=install_supervisor,
))
