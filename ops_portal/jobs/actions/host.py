"""Host-level actions: commands, scripts, facts, deploys and compliance checks — on the portal's
own machine (local transport) or over SSH with a per-job bounded connection pool."""
import os
import secrets

from ops_portal.inventory import services as inventory
from ops_portal.inventory.choices import Transport
from schedulers import host as ssh
from schedulers import local
from schedulers.base import BackendError, CommandResult

from . import ActionSpec, register

INTERPRETERS = {"sh": ["sh", "-s"], "bash": ["bash", "-s"], "python3": ["python3", "-"]}
DEFAULT_POOL = 20


def local_env(ctx):
    """A clean environment for commands on the portal's machine: never the worker's own secrets."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "OPSPORTAL_JOB": str(ctx.job.pk),
        "OPSPORTAL_TARGET": ctx.target.name,
    }


def prepare_ssh(runner):
    """One SSH pool per job, bounded by the strategy's limit; first-seen host keys get pinned."""
    hosts_by_name = {obj.name: obj.pk for obj in runner.objects.values()}

    def on_host_key(target, key_line, fingerprint):
        host_id = hosts_by_name.get(target.name)
        if host_id is not None:
            runner.writer.call(lambda: inventory.pin_first_host_key(host_id, key_line))

    limit = runner.job.strategy.get("limit", DEFAULT_POOL)
    runner.resources["ssh"] = ssh.SSHPool(max_connections=max(1, min(limit, len(runner.targets) or 1)),
                                          on_host_key=on_host_key)


def ssh_target(host):
    credential = host.credential
    if credential is None:
        raise BackendError(f"host {host.name} has no SSH credential")
    return ssh.SSHTarget(name=host.name, address=host.address, port=host.port, username=host.login_user,
                         private_key=credential.private_key, passphrase=credential.passphrase or "",
                         pinned_host_key=host.host_key, connect_timeout=10.0)


def with_host(ctx, local_call, ssh_call):
    """Run on the target host by its transport, and note how reaching it went."""
    host = ctx.obj
    if host is None:
        raise BackendError(f"host {ctx.target.name} is no longer in the inventory")
    if host.transport == Transport.LOCAL:
        return local_call(host)
    host_id = host.pk
    try:
        result = ssh_call(ctx.resources["ssh"], ssh_target(host))
    except ssh.HostKeyMismatch as exc:
        offered, message = exc.offered_key, str(exc)
        ctx.after(lambda: inventory.note_host_key_changed(host_id, offered, message))
        raise
    except BackendError as exc:  # ConnectionLost too: the host went away during the command
        message = str(exc)
        ctx.after(lambda: inventory.note_unreachable(host_id, message))
        raise
    ctx.after(lambda: inventory.note_reachable(host_id))
    return result


# Commands and scripts ------------------------------------------------------------------------

def run_command(ctx):
    command = ctx.params["command"]
    return with_host(
        ctx,
        lambda host: local.run(["sh", "-c", command], on_line=ctx.output, cancel=ctx.cancel, timeout=ctx.timeout,
                               env=local_env(ctx)),
        lambda pool, target: ssh.run_command(pool, target, command, on_line=ctx.output, cancel=ctx.cancel,
                                             timeout=ctx.timeout, env=_remote_env(ctx), on_session=ctx.remote_session),
    )


def _remote_env(ctx):
    # OPSPORTAL_JOB also tags the command's remote session: jobs.lost ends it only when it carries it.
    return {"OPSPORTAL_JOB": str(ctx.job.pk), "OPSPORTAL_TARGET": ctx.target.name}


def run_script(ctx):
    script, interpreter = ctx.params["script"], ctx.params["interpreter"]

    def over_ssh(pool, target):
        path = f"/tmp/.opsportal-{ctx.job.pk}-{ctx.target.index}-{secrets.token_hex(4)}"
        with pool.connection(target, cancel=ctx.cancel) as conn:
            ssh.put_file(conn, path, script.encode(), 0o700)
        try:
            argv = [INTERPRETERS[interpreter][0], path]
            return ssh.run_command(pool, target, " ".join(_quote(a) for a in argv), on_line=ctx.output,
                                   cancel=ctx.cancel, timeout=ctx.timeout, env=_remote_env(ctx),
                                   on_session=ctx.remote_session)
        finally:
            ssh.run_capture(pool, target, f"rm -f -- {_quote(path)}", timeout=30)

    return with_host(
        ctx,
        lambda host: local.run(INTERPRETERS[interpreter], stdin=script, on_line=ctx.output, cancel=ctx.cancel,
                               timeout=ctx.timeout, env=local_env(ctx)),
        over_ssh,
    )


def _quote(value):
    import shlex

    return shlex.quote(value)


# Facts --------------------------------------------------------------------------------------

def gather_facts(ctx):
    def local_facts(host):
        from schedulers.hostlib.probes import probe_source

        lines = []
        result = local.run(["python3", "-c", probe_source(), "facts"], on_line=lambda s, line: lines.append((s, line)),
                           cancel=ctx.cancel, timeout=60, env=local_env(ctx))
        if not result.ok:
            return result
        import json

        return json.loads([line for stream, line in lines if stream == "stdout"][-1])

    facts = with_host(ctx, local_facts, lambda pool, target: ssh.gather_facts(pool, target, cancel=ctx.cancel))
    if isinstance(facts, CommandResult):
        return facts
    host_id, job_id = ctx.obj.pk, ctx.job.pk
    summary = (f"{facts.get('os', {}).get('pretty_name', '?')}, kernel {facts.get('kernel')}, "
               f"{facts.get('cpu_count')} CPUs")
    ctx.output("stdout", summary)
    ctx.after(lambda: inventory.store_facts(host_id, facts, job_id))
    return CommandResult(exit_code=0, changed=False, data={"summary": summary})


# Deploys ------------------------------------------------------------------------------------

def prepare_deploy(runner):
    from ops_portal.inventory.models import Artifact

    prepare_ssh(runner)
    artifact = Artifact.objects.filter(pk=runner.params["artifact"], environment=runner.job.environment).first()
    if artifact is None:
        raise BackendError("the release artifact is gone or belongs to another environment")
    runner.resources["artifact"] = bytes(artifact.data)


def deploy(ctx):
    params = ctx.params
    release = params.get("release_id") or f"job{ctx.job.pk}"

    def over_ssh(pool, target):
        return ssh.deploy_release(pool, target, base_dir=params["base_dir"], release_id=release,
                                  archive=ctx.resources["artifact"], keep=params["keep"],
                                  restart_hook=params.get("restart_hook") or None, on_line=ctx.output,
                                  cancel=ctx.cancel, timeout=ctx.timeout or 600)

    return with_host(ctx, _no_local("deploys"), over_ssh)


def rollback(ctx):
    def over_ssh(pool, target):
        return ssh.rollback_release(pool, target, base_dir=ctx.params["base_dir"], on_line=ctx.output,
                                    cancel=ctx.cancel)

    return with_host(ctx, _no_local("rollbacks"), over_ssh)


def _no_local(what):
    def refuse(host):
        raise BackendError(f"{what} run over SSH; {host.name} is the portal's own machine")

    return refuse


# Compliance ---------------------------------------------------------------------------------

def compliance(ctx):
    ports = tuple(int(p) for p in str(ctx.params.get("allowed_ports") or "22").split(",") if p.strip())
    results = with_host(ctx, _no_local("compliance checks"),
                        lambda pool, target: ssh.run_compliance_checks(pool, target, allowed_ports=ports,
                                                                        cancel=ctx.cancel))
    failed = [r for r in results if r["passed"] is False]
    for result in results:
        mark = {True: "PASS", False: "FAIL", None: "UNKNOWN"}[result["passed"]]
        ctx.output("stdout", f"{mark:7} {result['check']}: {str(result['evidence'])[:300]}")
    host_id, job_id = ctx.obj.pk, ctx.job.pk
    ctx.after(lambda: inventory.store_compliance(host_id, results, job_id))
    return CommandResult(exit_code=1 if failed else 0, changed=False,
                         data={"passed": sum(1 for r in results if r["passed"]), "failed": len(failed),
                               "unknown": sum(1 for r in results if r["passed"] is None)})


RELEASE_ID = r"[A-Za-z0-9._-]{1,64}"
# An absolute path of plain characters, without `..` components.
ABS_PATH = r"(?!.*/\.\.(/|$))/[A-Za-z0-9._/-]{1,250}"

register(ActionSpec(
    name="host.command", label="Run a command", target_kind="host", prepare=prepare_ssh,
    description="Run a shell command on each host; output streams line by line.",
    parameters=[{"name": "command", "type": "text", "required": True, "max_length": 16384,
                 "label": "Command", "help": "Runs with sh -c on the host."}],
    run=run_command,
))
register(ActionSpec(
    name="host.script", label="Run a script", target_kind="host", prepare=prepare_ssh,
    description="Copy a script to each host and run it with an interpreter.",
    parameters=[{"name": "script", "type": "text", "required": True, "max_length": 262144, "label": "Script"},
                {"name": "interpreter", "type": "choice", "choices": list(INTERPRETERS), "default": "sh"}],
    run=run_script,
))
register(ActionSpec(
    name="host.facts", label="Gather facts", target_kind="host", prepare=prepare_ssh, mutating=False,
    description="OS, kernel, CPUs, memory, disks, uptime, addresses, listening ports, pending reboot.",
    parameters=[], run=gather_facts,
))
register(ActionSpec(
    name="host.deploy", label="Deploy a release", target_kind="host", prepare=prepare_deploy,
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
    name="host.rollback", label="Roll back a release", target_kind="host", prepare=prepare_ssh,
    description="Switch `current` back to the previous release.",
    parameters=[{"name": "base_dir", "type": "string", "required": True, "pattern": ABS_PATH}],
    run=rollback,
))
register(ActionSpec(
    name="host.compliance", label="Security and compliance checks", target_kind="host", prepare=prepare_ssh,
    mutating=False,
    description="sshd root login and passwords, world-writable files under /etc, pending security updates, "
                "unexpected listening ports.",
    parameters=[{"name": "allowed_ports", "type": "string", "default": "22", "pattern": r"[0-9]{1,5}(,[0-9]{1,5})*"}],
    run=compliance,
))
