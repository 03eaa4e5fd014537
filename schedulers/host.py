"""The host level: act on machines over SSH (Fabric/paramiko). Django-free.

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
from .base import BackendError, CancelToken, CommandResult
from .hostlib.command import ConnectionLost, end_remote_session, run_capture, run_command
from .hostlib.connect import HostConnection, HostKeyMismatch, SSHPool, SSHTarget, connect
from .hostlib.files import apply_file, put_file, read_file, stat
from .hostlib.probes import collect_metrics, gather_facts, run_compliance_checks
from .hostlib.release import deploy_release, rollback_release
from .hostlib.validate import release_archive as validate_release_archive

__all__ = [
    "BackendError", "CancelToken", "CommandResult", "ConnectionLost", "HostConnection", "HostKeyMismatch",
    "SSHPool", "SSHTarget", "apply_file", "collect_metrics", "connect", "deploy_release", "end_remote_session",
    "gather_facts", "put_file", "read_file", "rollback_release", "run_capture", "run_command",
    "run_compliance_checks", "stat", "validate_release_archive",
]
