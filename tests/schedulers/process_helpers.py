"""Helpers for the process managers' tests against fleet hosts: a small SSH Shell, a command on a
host, a program that prints a line every so often.

`FleetShell` is a test-only Shell (schedulers/process/shells.py has the portal's own): run()
execs the quoted argv on a paramiko channel of the fleet's pinned login, with stdin;
stream() goes through hostlib's run_command, which ends the remote session on cancel.
"""
import shlex
import time
from pathlib import Path

from schedulers.base import BackendError
from schedulers.host import SSHPool, SSHTarget, run_command
from schedulers.process.base import ProgramSpec, Shell, ShellResult

# Branches written before tests/helpers.py import the poller from here by its old name.
from tests.helpers import wait_until as wait_for  # noqa: F401


class FleetShell(Shell):
    """Runs argv on one host of a fleet run (fleet.Fleet) as root."""

    def __init__(self, fleet, host):
        self.fleet = fleet
        self.host = host
        self.name = host.name
        self.calls = []  # every argv run, for tests that check nothing ran
        self._pool = SSHPool(4)
        self._target = SSHTarget(name=host.name, address=host.address, port=host.port, username=host.user,
                                 private_key=Path(fleet.key_path).read_text(), pinned_host_key=host.host_key)

    def close(self):
        self._pool.close()

    def run(self, argv, *, stdin=None, timeout=60.0, cancel=None, env=None, sweep=True):
        argv = list(argv)  # a plain exec request: no session of its own, nothing to sweep
        self.calls.append(argv)
        if env:
            argv = ["env", "--", *(f"{k}={v}" for k, v in env.items()), *argv]
        try:
            client = self.fleet.ssh(self.name)
        except OSError as exc:
            raise BackendError(f"cannot reach {self.name}: {exc}")
        try:
            chan = client.get_transport().open_session()
            chan.settimeout(timeout)
            chan.exec_command(shlex.join(argv))
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout
            while not (chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready()):
                if time.monotonic() > deadline:
                    raise BackendError(f"{argv[0]} on {self.name}: timed out after {timeout:g}s")
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                else:
                    time.sleep(0.01)
            return ShellResult(chan.recv_exit_status(), bytes(out), bytes(err))
        finally:
            client.close()

    def stream(self, argv, *, on_line, cancel=None, timeout=None):
        self.calls.append(list(argv))
        result = run_command(self._pool, self._target, shlex.join(argv), on_line=on_line, cancel=cancel,
                             timeout=timeout)
        if result.exit_code is None and not result.canceled:
            raise BackendError(f"{argv[0]} on {self.name}: {result.error}")
        return result.exit_code if result.exit_code is not None else -1


def sh(fleet_run, host, command):
    """Run a shell command as root on `host` of a fleet run; returns its result."""
    return fleet_run.run(host.name, command)


def ticker(name, *, every=0.3, **fields):
    """A program that prints "line N" every `every` seconds, for ever."""
    script = 'i=0; while true; do i=$((i+1)); echo "line $i"; sleep ' + str(every) + '; done'
    return ProgramSpec(name=name, command=["/bin/sh", "-c", script], **fields)
