"""The host level's job actions: commands, scripts, facts, deploys and compliance checks — on the
portal's own machine (local transport) or over SSH with a per-job bounded connection pool.

Hosts are inventory, which sits below jobs, so the host level's actions live in the jobs app (the
top of its layers, loaded by core.declarations like every app's job_actions.py); configs and
monitoring build theirs on the helpers here (prepare_ssh, with_host).
"""
from ops_portal.inventory import services as inventory
from ops_portal.inventory import warm
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.models import Artifact
from ops_portal.inventory.targets import HOSTS
from schedulers import base as backends
from schedulers import host as ssh
from schedulers.base import BackendError, CommandResult
from schedulers.hostlib import validate as release_rules

from .actions import ActionSpec, register

DEFAULT_POOL = 20
HOST = backends.get("host")  # schedulers.host registers it


def job_env(ctx):
    """What a command learns about its job (the backend adds a clean PATH, HOME, LANG locally).
    OPSPORTAL_JOB also tags the command's remote session: jobs.end_lost_sessions ends a session
    only when its processes carry it."""
    return {"OPSPORTAL_JOB": str(ctx.job.pk), "OPSPORTAL_TARGET": ctx.target.name}


def job_session(runner, limit, on_host_key):
    """The job's SSH pool over this worker process's warm connections: those of a canceled or
    timed-out job are closed rather than kept (their sessions were being ended)."""
    warm.configure()
    return HOST.session(limit, on_host_key=on_host_key, reusable=lambda: not runner.cancel.is_set())


def prepare_ssh(runner):
    """The host backend's per-job session: one SSH pool bounded by the strategy's limit; first-seen
    host keys get pinned."""
    hosts_by_name = {obj.name: obj.pk for obj in runner.objects.values()}

    def on_host_key(target, key_line, fingerprint):
        host_id = hosts_by_name.get(target.name)
        if host_id is not None:
            runner.writer.call(lambda: inventory.pin_first_host_key(host_id, key_line))

    limit = runner.job.strategy.get("limit", DEFAULT_POOL)
    runner.resources["ssh"] = job_session(runner, min(limit, len(runner.targets) or 1), on_host_key)


def host_target(host):
    """The backend's view of an inventory host: where it is and how it is reached."""
    if host.transport == Transport.LOCAL:
        return ssh.LocalTarget(name=host.name)
    credential = host.credential
    if credential is None:
        raise BackendError(f"host {host.name} has no SSH credential")
    return ssh.SSHTarget(name=host.name, address=host.address, port=host.port, username=host.login_user,
                         private_key=credential.private_key, passphrase=credential.passphrase or "",
                         pinned_host_key=host.host_key, connect_timeout=10.0)


def ssh_only(target, refusal):
    """Refuse work meant for remote hosts on the portal's own machine."""
    if HOST.transport_of(target) != "ssh":
        raise BackendError(refusal)


def with_host(ctx, call):
    """call(session, target) on the target's host (the backend reaches it by its transport), and
    note how reaching it went."""
    host = ctx.obj
    if host is None:
        raise BackendError(f"host {ctx.target.name} is no longer in the inventory")
    session, host_id = ctx.resources["ssh"], host.pk
    if host.transport == Transport.LOCAL:  # the portal's own machine: nothing to note about reaching it
        return call(session, host_target(host))
    try:
        result = call(session, host_target(host))
    except ssh.HostKeyMismatch as exc:
        offered, message = exc.offered_key, str(exc)
        ctx.after(lambda: inventory.note_host_key_changed(host_id, offered, message))
        raise
    except BackendError as exc:  # ConnectionLost too: the host went away during the command
        message = str(exc)
        ctx.after(lambda: inventory.note_unreachable(host_id, message))
        raise
    ctx.after_each(inventory.note_reachable_many, host_id)
    return result


# Commands and scripts ------------------------------------------------------------------------

def run_command(ctx):
    command = ctx.params["command"]
    return with_host(ctx, lambda session, target: HOST.run_command(
        session, target, command, on_line=ctx.output, cancel=ctx.cancel, timeout=ctx.timeout, env=job_env(ctx),
        on_session=ctx.remote_session))


def run_script(ctx):
    script, interpreter = ctx.params["script"], ctx.params["interpreter"]
    return with_host(ctx, lambda session, target: HOST.run_script(
        session, target, script, interpreter, on_line=ctx.output, cancel=ctx.cancel, timeout=ctx.timeout,
        env=job_env(ctx), tag=f"{ctx.job.pk}-{ctx.target.index}", on_session=ctx.remote_session))


# Facts --------------------------------------------------------------------------------------

def gather_facts(ctx):
    facts = with_host(ctx, lambda session, target: HOST.probe(session, target, "facts", cancel=ctx.cancel,
                                                              env=job_env(ctx)))
    host_id, job_id = ctx.obj.pk, ctx.job.pk
    summary = (f"{facts.get('os', {}).get('pretty_name', '?')}, kernel {facts.get('kernel')}, "
               f"{facts.get('cpu_count')} CPUs")
    ctx.output("stdout", summary)
    ctx.after(lambda: inventory.store_facts(host_id, facts, job_id))
    return CommandResult(exit_code=0, changed=False, data={"summary": summary})


# Deploys ------------------------------------------------------------------------------------

def prepare_deploy(runner):
    prepare_ssh(runner)
    artifact = Artifact.objects.filter(pk=runner.params["artifact"], environment=runner.job.environment).first()
    if artifact is None:
        raise BackendError("the release artifact is gone or belongs to another environment")
    runner.resources["artifact"] = bytes(artifact.data)


def deploy(ctx):
    params = ctx.params
    release = params.get("release_id") or f"job{ctx.job.pk}"

    def over_ssh(pool, target):
        ssh_only(target, f"deploys run over SSH; {target.name} is the portal's own machine")
        return ssh.deploy_release(pool, target, base_dir=params["base_dir"], release_id=release,
                                  archive=ctx.resources["artifact"], keep=params["keep"],
                                  restart_hook=params.get("restart_hook") or None, on_line=ctx.output,
                                  cancel=ctx.cancel, timeout=ctx.timeout or 600)

    return with_host(ctx, over_ssh)


def rollback(ctx):
    def over_ssh(pool, target):
        ssh_only(target, f"rollbacks run over SSH; {target.name} is the portal's own machine")
        return ssh.rollback_release(pool, target, base_dir=ctx.params["base_dir"], on_line=ctx.output,
                                    cancel=ctx.cancel)

    return with_host(ctx, over_ssh)


# Compliance ---------------------------------------------------------------------------------

def compliance(ctx):
    ports = tuple(int(p) for p in str(ctx.params.get("allowed_ports") or "22").split(",") if p.strip())

    def over_ssh(pool, target):
        ssh_only(target, f"compliance checks run over SSH; {target.name} is the portal's own machine")
        return ssh.run_compliance_checks(pool, target, allowed_ports=ports, cancel=ctx.cancel)

    results = with_host(ctx, over_ssh)
    failed = [r for r in results if r["passed"] is False]
    for result in results:
        mark = {True: "PASS", False: "FAIL", None: "UNKNOWN"}[result["passed"]]
        ctx.output("stdout", f"{mark:7} {result['check']}: {str(result['evidence'])[:300]}")
    host_id, job_id = ctx.obj.pk, ctx.job.pk
    ctx.after(lambda: inventory.store_compliance(host_id, results, job_id))
    return CommandResult(exit_code=1 if failed else 0, changed=False,
                         data={"passed": sum(1 for r in results if r["passed"]), "failed": len(failed),
                               "unknown": sum(1 for r in results if r["passed"] is None)})


# The backend's own rule (no leading '.' or '-'), so a bad id is a 400 at launch, not a failed target.
RELEASE_ID = release_rules.RELEASE_ID.pattern
# An absolute path of plain characters, without `..` components.
ABS_PATH = r"(?!.*/\.\.(/|$))/[A-Za-z0-9._/-]{1,250}"

register(ActionSpec(
    name="host.command", label="Run a command", target_kind=HOSTS.name, prepare=prepare_ssh,
    description="Run a shell command on each host; output streams line by line.",
    parameters=[{"name": "command", "type": "text", "required": True, "max_length": 16384,
                 "label": "Command", "help": "Runs with sh -c on the host."}],
    run=run_command,
))
register(ActionSpec(
    name="host.script", label="Run a script", target_kind=HOSTS.name, prepare=prepare_ssh,
    description="Copy a script to each host and run it with an interpreter.",
    parameters=[{"name": "script", "type": "text", "required": True, "max_length": 262144, "label": "Script"},
                {"name": "interpreter", "type": "choice", "choices": list(ssh.INTERPRETERS), "default": "sh"}],
    run=run_script,
))
register(ActionSpec(
    name="host.facts", label="Gather facts", target_kind=HOSTS.name, prepare=prepare_ssh, mutating=False,
    description="OS, kernel, CPUs, memory, disks, uptime, addresses, listening ports, pending reboot.",
    parameters=[], run=gather_facts,
))
register(ActionSpec(
    name="host.deploy", label="Deploy a release", target_kind=HOSTS.name, prepare=prepare_deploy,
    description="Unpack a release into releases/<id>, switch `current` atomically, run the restart hook, "
                "keep the last N releases.",
    parameters=[{"name": "artifact", "type": "int", "required": True, "min": 1, "label": "Artifact id"},
                {"name": "base_dir", "type": "string", "required": True, "pattern": ABS_PATH},
                {"name": "release_id", "type": "string", "pattern": RELEASE_ID},
                {"name": "keep", "type": "int", "default": 5, "min": 1, "max": 100},
                {"name": "restart_hook", "type": "text", "max_length": 4096}],
    run=deploy, rollback="host.rollback",
))
register(ActionSpec(
    name="host.rollback", label="Roll back a release", target_kind=HOSTS.name, prepare=prepare_ssh,
    description="Switch `current` back to the previous release.",
    parameters=[{"name": "base_dir", "type": "string", "required": True, "pattern": ABS_PATH}],
    run=rollback,
))
register(ActionSpec(
    name="host.compliance", label="Security and compliance checks", target_kind=HOSTS.name, prepare=prepare_ssh,
    mutating=False,
    description="sshd root login and passwords, world-writable files under /etc, pending security updates, "
                "unexpected listening ports.",
    parameters=[{"name": "allowed_ports", "type": "string", "default": "22", "pattern": r"[0-9]{1,5}(,[0-9]{1,5})*"}],
    run=compliance,
))
