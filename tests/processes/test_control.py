"""Signals to one process by pid and start time (schedulers/process/control.py) on this machine:
pause and resume, stop with a grace, a reused pid refused with nothing sent, init and the portal's
own session refused, bad input refused before anything runs."""
import os
import subprocess
import sys
import time

import psutil
import pytest

from schedulers.process import control
from schedulers.process.base import Shell, ShellResult
from schedulers.process.shells import LocalShell
from tests.helpers import wait_until

SHELL = LocalShell("portal")


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "300"])
    time.sleep(0.05)
    yield proc, round(psutil.Process(proc.pid).create_time(), 2)
    proc.kill()
    proc.wait()


def state(pid):
    return psutil.Process(pid).status()


def test_pause_stops_the_process_and_resume_lets_it_run_again(sleeper):
    proc, started = sleeper
    paused = control.act(SHELL, proc.pid, started, "pause")
    assert (paused.sent, paused.state, paused.ended) == (["STOP"], "T", False)
    assert state(proc.pid) == psutil.STATUS_STOPPED
    resumed = control.act(SHELL, proc.pid, started, "resume")
    # Right after SIGCONT the sleeper may still be on its way back to sleep (R); never stopped (T) again.
    assert resumed.sent == ["CONT"] and resumed.state in ("S", "R")
    assert wait_until(lambda: state(proc.pid) == psutil.STATUS_SLEEPING, timeout=5, what="the sleeper to sleep")
    assert paused.pidfd  # this machine's Python and kernel have pidfds: the check is race-free


def test_a_pid_whose_start_time_changed_is_refused_and_nothing_is_sent(sleeper):
    proc, started = sleeper
    with pytest.raises(control.ProcessChanged, match=f"pid {proc.pid} is now another process"):
        control.act(SHELL, proc.pid, started - 60, "kill")
    assert state(proc.pid) == psutil.STATUS_SLEEPING  # still alive, never signaled


def test_an_ended_process_is_refused(sleeper):
    proc, started = sleeper
    proc.kill()
    proc.wait()
    with pytest.raises(control.ProcessChanged, match="has ended: nothing was sent"):
        control.act(SHELL, proc.pid, started, "signal", signal="HUP")


def test_stop_sends_term_and_kills_after_the_grace_when_term_is_ignored():
    proc = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                             "signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"], stdout=subprocess.PIPE)
    proc.stdout.readline()
    started = round(psutil.Process(proc.pid).create_time(), 2)
    try:
        outcome = control.act(SHELL, proc.pid, started, "stop", grace=0.5)
        assert outcome.sent == ["TERM", "KILL"] and outcome.ended and outcome.after >= 0.5
    finally:
        proc.kill()
        proc.wait()


def test_init_and_the_portals_own_session_are_refused():
    with pytest.raises(control.ProcessChanged, match="pid 1 is the host's init"):
        control.act(SHELL, 1, 1.0, "kill")
    me = psutil.Process()
    with pytest.raises(control.ProcessChanged, match="the portal does not signal itself"):
        control.act(SHELL, os.getpid(), round(me.create_time(), 2), "kill")


class Recording(Shell):
    name = "recorder"

    def __init__(self):
        self.calls = []

    def run(self, argv, **options):
        self.calls.append(argv)
        return ShellResult(0, b"", b"")

    def stream(self, argv, **options):
        raise AssertionError("not used")


@pytest.mark.parametrize("pid, started, action, options", [
    ("1; reboot", 1.0, "kill", {}),
    (True, 1.0, "kill", {}),
    (0, 1.0, "kill", {}),
    (2**31, 1.0, "kill", {}),
    (100, float("nan"), "kill", {}),
    (100, "1700000000; id", "kill", {}),
    (100, 1.0, "kill; id", {}),
    (100, 1.0, "signal", {"signal": "TERM; rm -rf /"}),
    (100, 1.0, "signal", {"signal": "SIGSEGV"}),
    (100, 1.0, "stop", {"grace": -1}),
    (100, 1.0, "stop", {"grace": "10 && id"}),
])
def test_bad_input_is_refused_before_anything_runs(pid, started, action, options):
    shell = Recording()
    with pytest.raises(ValueError):
        control.act(shell, pid, started, action, **options)
    assert shell.calls == []
