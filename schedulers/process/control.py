"""Signals to one process of a host, by pid and start time: signal, stop (TERM, then KILL after a
grace), kill, pause (STOP) and resume (CONT).

A process is named by its pid and the start time the inventory saw; remote/signal_pid.py runs on
the host through its Shell (one round trip), checks that the pid still belongs to that process and
only then signals it (through a pidfd where the host's Python and kernel have one, so a pid reused
meanwhile is never hit). A pid whose process ended or was reused is refused with nothing sent.

Everything the caller hands in is checked here, before anything reaches the host: the pid and start
time are numbers, the action and the signal come from fixed lists, and they travel as separate
argv words.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from ..base import CancelToken
from .base import ProcessError, Shell
from .shells import python_argv

ACTIONS = ("check", "signal", "stop", "kill", "pause", "resume")
SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "STOP", "CONT", "ABRT", "ALRM", "WINCH", "PIPE")
MAX_PID = 4194304  # the kernel's PID_MAX_LIMIT
MAX_GRACE = 600
RESULT_MARK = "OPSPORTAL-RESULT "


class ProcessChanged(ProcessError):
    """The pid no longer belongs to the process the caller named (it ended, or was reused), or the
    process may not be signaled (init, a kernel thread, the portal's own session); nothing was sent."""


@dataclass
class Outcome:
    pid: int
    action: str
    name: str = ""
    user: str = ""
    before: str = ""  # state letter before
    state: str = ""  # state letter after; "" when the process ended
    ended: bool = False
    sent: list = field(default_factory=list)  # signal names, in order
    after: float = 0.0  # seconds from the first signal to the answer
    pidfd: bool = False  # whether the check and the signals went through a pidfd (race-free)

    def describe(self):
        what = " then ".join(f"SIG{name}" for name in self.sent) or "nothing"
        where = f"pid {self.pid} ({self.name}, {self.user})"
        if self.ended:
            return f"sent {what} to {where}: it ended after {self.after:g}s"
        return f"sent {what} to {where}: its state is now {self.state}"


@cache
def _source():
    return resources.files(__package__).joinpath("remote/signal_pid.py").read_text(encoding="utf-8")


def signal_name(value) -> str:
    """"TERM" for "TERM", "SIGTERM" or "term"; refuse anything else."""
    name = value.upper().removeprefix("SIG") if isinstance(value, str) else None
    if name not in SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(SIGNALS)}")
    return name


def check_target(pid, start_time):
    if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= MAX_PID:
        raise ValueError(f"pid must be a whole number from 1 to {MAX_PID}")
    if isinstance(start_time, bool) or not isinstance(start_time, int | float) or not math.isfinite(start_time) \
            or start_time <= 0:
        raise ValueError("start time must be a positive number of seconds since the epoch")


def act(shell: Shell, pid: int, start_time: float, action: str, *, signal: str = "TERM", grace: float = 10.0,
        python: str = "python3", timeout: float = 60.0, cancel: CancelToken | None = None) -> Outcome:
    """Perform action on the process pid that started at start_time; ProcessChanged (nothing sent)
    when it is not that process any more or may not be signaled, ProcessError when the host fails."""
    check_target(pid, start_time)
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    signame = signal_name(signal)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= MAX_GRACE:
        raise ValueError(f"grace must be from 0 to {MAX_GRACE} seconds")
    argv = python_argv(_source(), str(pid), f"{start_time:.2f}", action, signame, f"{grace:g}", python=python)
    result = shell.run(argv, timeout=max(timeout, grace + 15), cancel=cancel)
    if result.exit_code == 127:
        raise ProcessError(f"cannot signal processes on {shell.name}: {python} is not installed there")
    lines = [line for line in result.text().splitlines() if line.startswith(RESULT_MARK)]
    if not result.ok or not lines:
        detail = result.stderr.decode("utf-8", "replace").strip()[-500:] or f"exit {result.exit_code}"
        raise ProcessError(f"signaling pid {pid} on {shell.name} failed: {detail}")
    try:
        document = json.loads(lines[-1][len(RESULT_MARK):])
    except ValueError as exc:
        raise ProcessError(f"the answer from {shell.name} could not be read: {exc}")
    if not document.get("ok"):
        error = f"{shell.name}: {document.get('error') or 'refused'}"
        raise ProcessChanged(error) if document.get("refused") else ProcessError(error)
    return Outcome(pid=pid, action=action, name=document.get("name", ""), user=document.get("user", ""),
                   before=document.get("before", ""), state=document.get("state", ""),
                   ended=bool(document.get("ended")), sent=list(document.get("sent", [])),
                   after=float(document.get("after", 0.0)), pidfd=bool(document.get("pidfd")))
