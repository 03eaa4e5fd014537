"""Shells: run an argv list on the portal's own machine (LocalShell) or on a fleet host (SSHShell).

Both take argv lists only and never build shell text from them: LocalShell hands the list to
the kernel as is, SSHShell quotes each word with shlex for the one command line an SSH exec
request carries and runs it through hostlib's command runner (its own session on the host,
ended and confirmed gone on cancel or timeout).

Output over SSH arrives as text lines (hostlib decodes UTF-8 and cuts lines longer than 64 KiB):
SSHShell.run returns those lines joined with "\\n". Remote scripts that return data print it as
base64 lines (see `decode_payload`), which survives that unchanged.
"""
from __future__ import annotations

import base64
import gzip
import json
import os
import shlex
import subprocess
import time
import zlib

from .. import local
from ..base import BackendError, CancelToken
from ..hostlib.command import run_command
from ..hostlib.connect import HostConnection, SSHPool, SSHTarget
from .base import Shell, ShellResult

PAYLOAD_MARK = "OPSPORTAL-PAYLOAD"


class LocalShell(Shell):
    """Run argv on the portal's own machine as a subprocess in its own process group."""

    def __init__(self, name: str = "localhost"):
        self.name = name

    def run(self, argv, *, stdin=None, timeout=60.0, cancel=None, env=None, sweep=True):
        argv = _check_argv(argv)
        cancel = cancel or CancelToken()
        environment = dict(os.environ, **env) if env else None
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    start_new_session=True, env=environment)
        except OSError as exc:
            raise BackendError(f"could not start {argv[0]} on {self.name}: {exc.strerror or exc}")
        deadline = time.monotonic() + timeout if timeout else None
        first = True
        while True:
            try:
                # communicate() may be called again after a timeout without losing output.
                out, err = proc.communicate(stdin if first else None, timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                first = False
            if cancel.is_set() or (deadline is not None and time.monotonic() > deadline):
                gone = local.end_process_group(proc.pid, reap=proc.poll)
                proc.communicate()
                what = "canceled" if cancel.is_set() else f"timed out after {timeout:g}s"
                if not gone:
                    what += "; its process group did not end after SIGKILL"
                raise BackendError(f"{argv[0]} on {self.name}: {what}")
        # What the command left running in its process group is ended, as local.run does (cheap
        # here: a signal to the group, whatever sweep says).
        local.end_process_group(proc.pid, reap=proc.poll)
        return ShellResult(proc.returncode, out, err)

    def stream(self, argv, *, on_line, cancel=None, timeout=None):
        result = local.run(_check_argv(argv), on_line=on_line, cancel=cancel, timeout=timeout)
        return _stream_outcome(self.name, argv, result)


class SSHShell(Shell):
    """Run argv on one SSH host through a pool (a connection leased per call) or a held connection.

    env: variables every command gets (a job's OPSPORTAL_JOB tag, by which end_remote_session
    recognises the job's sessions); on_session(sid): told the remote session id of each stream
    (a log follow) as it starts, so a session left behind by a dead worker can be ended.
    """

    def __init__(self, pool_or_conn: SSHPool | HostConnection, target: SSHTarget, *, env: dict | None = None,
                 on_session=None):
        self.pool = pool_or_conn
        self.target = target
        self.name = target.name
        self.env = dict(env or {})
        self.on_session = on_session

    def run(self, argv, *, stdin=None, timeout=60.0, cancel=None, env=None, sweep=True):
        out, err = [], []

        def collect(stream, text):
            (out if stream == "stdout" else err).append(text)

        try:
            result = run_command(self.pool, self.target, shlex.join(_check_argv(argv)), on_line=collect,
                                 cancel=cancel, timeout=timeout, env={**self.env, **(env or {})} or None,
                                 stdin=stdin, sweep=sweep)
        except ValueError as exc:
            raise BackendError(f"{argv[0]} on {self.name}: {exc}")
        if result.exit_code is None or result.canceled or result.timed_out:
            what = "canceled" if result.canceled else result.error or "did not finish"
            raise BackendError(f"{argv[0]} on {self.name}: {what}")
        return ShellResult(result.exit_code, _joined(out), _joined(err))

    def stream(self, argv, *, on_line, cancel=None, timeout=None):
        result = run_command(self.pool, self.target, shlex.join(_check_argv(argv)), on_line=on_line,
                             cancel=cancel, timeout=timeout, env=self.env or None, on_session=self.on_session)
        return _stream_outcome(self.name, argv, result)


def _check_argv(argv):
    if not isinstance(argv, list | tuple) or not argv:
        raise ValueError("argv must be a non-empty list of strings")
    for word in argv:
        if not isinstance(word, str) or "\x00" in word:
            raise ValueError(f"argument {word!r} is not a string without NUL")
    return list(argv)


def _joined(lines):
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _stream_outcome(name, argv, result):
    if result.canceled:
        return result.exit_code if result.exit_code is not None else -1
    if result.exit_code is None or result.timed_out:
        raise BackendError(f"{argv[0]} on {name}: {result.error or 'did not finish'}")
    return result.exit_code


# Remote scripts --------------------------------------------------------------------------------

def python_argv(source: str, *args: str, python: str = "python3") -> list[str]:
    """argv that runs a Python script on a host, the source compressed into a `-c` loader.

    The loader runs the script as __main__, with sys.argv[1:] = args. It imports only C modules
    (binascii, zlib): base64 and gzip would import re and enum, milliseconds of every run.
    """
    packed = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    loader = f"import binascii,zlib;exec(zlib.decompress(binascii.a2b_base64('{packed}')))"
    return [python, "-c", loader, *args]


def decode_payload(text: str):
    """Return the JSON a remote script printed after PAYLOAD_MARK as gzip + base64 lines."""
    _, mark, rest = text.partition(PAYLOAD_MARK + "\n")
    if not mark:
        raise ValueError("no payload in the output")
    return json.loads(gzip.decompress(base64.b64decode(rest)))
