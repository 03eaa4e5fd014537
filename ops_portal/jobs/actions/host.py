"""Host-level actions: commands and scripts on hosts, locally or over SSH."""
import os

from ops_portal.inventory.choices import Transport
from schedulers import local
from schedulers.base import BackendError

from . import ActionSpec, register

INTERPRETERS = {"sh": ["sh", "-s"], "bash": ["bash", "-s"], "python3": ["python3", "-"]}


def local_env(ctx):
    """A clean environment for commands on the portal's machine: never the worker's own secrets."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
        "OPSPORTAL_JOB": str(ctx.job.pk),
        "OPSPORTAL_TARGET": ctx.target.name,
    }


def _run_on_host(ctx, *, command=None, script=None, interpreter="sh"):
    host = ctx.obj
    if host is None:
        raise BackendError(f"host {ctx.target.name} is no longer in the inventory")
    if host.transport == Transport.LOCAL:
        if script is not None:
            return local.run(INTERPRETERS[interpreter], stdin=script, on_line=ctx.output, cancel=ctx.cancel,
                             timeout=ctx.timeout, env=local_env(ctx))
        return local.run(["sh", "-c", command], on_line=ctx.output, cancel=ctx.cancel, timeout=ctx.timeout,
                         env=local_env(ctx))
    raise BackendError("the SSH backend is not available in this build")


def run_command(ctx):
    return _run_on_host(ctx, command=ctx.params["command"])


def run_script(ctx):
    return _run_on_host(ctx, script=ctx.params["script"], interpreter=ctx.params["interpreter"])


register(ActionSpec(
    name="host.command",
    label="Run a command",
    target_kind="host",
    description="Run a shell command on each host; output streams line by line.",
    parameters=[{"name": "command", "type": "text", "required": True, "max_length": 16384,
                 "label": "Command", "help": "Runs with the host's login shell (sh -c)."}],
    run=run_command,
))

register(ActionSpec(
    name="host.script",
    label="Run a script",
    target_kind="host",
    description="Send a script to each host's interpreter on standard input.",
    parameters=[{"name": "script", "type": "text", "required": True, "max_length": 262144, "label": "Script"},
                {"name": "interpreter", "type": "choice", "choices": list(INTERPRETERS), "default": "sh"}],
    run=run_script,
))
