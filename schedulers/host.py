"""The host level: act on machines over SSH (Fabric/paramiko), or on the portal's own machine as
subprocesses. Django-free.

HostBackend (registered as the "host" level, see base.py) runs commands, scripts and probes on a
target by its transport: a LocalTarget through schedulers.local, an SSHTarget through the job's
SSHPool (its session). The hostlib functions below are the SSH side, also usable directly.

The jobs runner calls these from its own worker threads, once per target, with an
`on_line(stream, text)` callback and a CancelToken:

    with SSHPool(max_connections=8) as pool:
        result = run_command(pool, target, "uptime", on_line=emit, cancel=token, timeout=60)

Threading: every function is safe to call from many threads at once. A connection is used
by one thread at a time: functions given the pool lease a connection for the duration of
the call (a second call for the same target at the same moment gets its own connection,
within the pool's bound, or waits); functions given a HostConnection expect the caller to
hold it alone.

Host keys: a target with an empty pinned_host_key is trusted on first use and its key
reported (SSHPool(on_host_key=…), HostConnection.host_key, result.data["host_key"]); a
pinned key that differs raises HostKeyMismatch before anything is sent. No known_hosts file
is read or written.

Cancel and timeout end the command's whole remote session and confirm it is gone before
reporting canceled/timed_out (see hostlib/command.py). Nothing here builds shell text from
caller input: arguments are validated and shlex-quoted, file transfers go over SFTP, and
private keys live only in memory.
"""
import json
import os
import secrets
import shlex
from dataclasses import dataclass
from typing import ClassVar

from . import local
from .base import Backend, BackendError, CancelToken, CommandResult, register
from .hostlib.command import ConnectionLost, end_remote_session, run_capture, run_command
from .hostlib.connect import HostConnection, HostKeyMismatch, SSHPool, SSHTarget, connect
from .hostlib.files import apply_file, put_file, read_file, stat
from .hostlib.probes import collect_metrics, gather_facts, probe_source, run_compliance_checks
from .hostlib.release import deploy_release, rollback_release
from .hostlib.validate import release_archive as validate_release_archive
from .hostlib.warm import WARM, WarmPool, credential_fingerprint

__all__ = [
    "HOST", "WARM", "BackendError", "CancelToken", "CommandResult", "ConnectionLost", "HostBackend", "HostConnection",
    "HostKeyMismatch", "LocalTarget", "SSHPool", "SSHTarget", "apply_file", "collect_metrics", "connect",
    "deploy_release", "end_remote_session",
    "gather_facts", "put_file", "read_file", "rollback_release", "run_capture", "run_command",
    "run_compliance_checks", "stat", "validate_release_archive", "WarmPool", "credential_fingerprint",
]

INTERPRETERS = {"sh": ["sh", "-s"], "bash": ["bash", "-s"], "python3": ["python3", "-"]}
# What a command on the portal's own machine gets besides the caller's variables: never the
# worker's own environment (its secrets).
LOCAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class LocalTarget:
    """The portal's own machine: commands run as subprocesses of the worker, in their own group."""

    transport: ClassVar[str] = "local"
    name: str


class HostBackend(Backend):
    """Machines, reached over SSH (a per-job SSHPool) or, for the portal's own, as subprocesses.

    The transport follows the target: a LocalTarget runs locally, an SSHTarget over the pool.
    Operations that only make sense remotely (deploys, configuration files, compliance checks)
    are called on hostlib directly after `require(target, "ssh", what)`.
    """

    level = "host"
    transports = ("local", "ssh")

    def session(self, limit, *, on_host_key=None, reusable=None):
        """A job's SSH pool: it takes warm connections of this process (hostlib/warm.py, when
        configured) and gives healthy ones back at the end unless reusable() says no."""
        return SSHPool(max_connections=max(1, limit), on_host_key=on_host_key, warm=WARM, reusable=reusable)

    def local_env(self, env=None):
        return {"PATH": LOCAL_PATH, "HOME": os.environ.get("HOME", "/"), "LANG": "C.UTF-8", **(env or {})}

    def run_command(self, session, target, command, *, on_line, cancel=None, timeout=None, env=None,
                    on_session=None):
        """Run a shell command line (sh -c) on the target and stream its output. Over SSH,
        on_session(sid) learns the remote session id as the command starts (end_remote_session)."""
        if self.transport_of(target) == "local":
            return local.run(["sh", "-c", command], on_line=on_line, cancel=cancel, timeout=timeout,
                             env=self.local_env(env))
        return run_command(session, target, command, on_line=on_line, cancel=cancel, timeout=timeout, env=env,
                           on_session=on_session)

    def run_script(self, session, target, script, interpreter, *, on_line, cancel=None, timeout=None, env=None,
                   tag="script", on_session=None):
        """Run a script with an interpreter of INTERPRETERS; over SSH it is copied to a private file
        (named after `tag`), run and removed."""
        if self.transport_of(target) == "local":
            return local.run(INTERPRETERS[interpreter], stdin=script, on_line=on_line, cancel=cancel,
                             timeout=timeout, env=self.local_env(env))
        path = f"/tmp/.opsportal-{tag}-{secrets.token_hex(4)}"
        with session.connection(target, cancel=cancel) as conn:
            put_file(conn, path, script.encode(), 0o700)
        try:
            argv = [INTERPRETERS[interpreter][0], path]
            return run_command(session, target, " ".join(shlex.quote(a) for a in argv), on_line=on_line,
                               cancel=cancel, timeout=timeout, env=env, on_session=on_session)
        finally:
            run_capture(session, target, f"rm -f -- {shlex.quote(path)}", timeout=30)

    def probe(self, session, target, kind, *, cancel=None, env=None):
        """The facts or metrics of the target (hostlib/remote/probe.py), as a dict."""
        if self.transport_of(target) == "ssh":
            return (gather_facts if kind == "facts" else collect_metrics)(session, target, cancel=cancel)
        lines = []
        result = local.run(["python3", "-c", probe_source(), kind], on_line=lambda s, line: lines.append((s, line)),
                           cancel=cancel, timeout=60, env=self.local_env(env))
        stdout = [line for stream, line in lines if stream == "stdout"]
        if not result.ok:
            detail = result.error or f"exit {result.exit_code}: {' '.join(line for _, line in lines[-3:])}"
            raise BackendError(f"{kind} on {target.name} failed: {detail}")
        try:
            return json.loads(stdout[-1])
        except (IndexError, ValueError):
            raise BackendError(f"{kind} on {target.name} returned no JSON") from None


HOST = register(HostBackend())
