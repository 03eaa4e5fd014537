"""The systemd manager against the real systemd of a fleet host (systemd as PID 1 in a container)."""
import threading
import time

import pytest

from schedulers.base import CancelToken
from schedulers.process.base import ManagerUnavailable, ProcessError, ProgramSpec, Shell, ShellResult
from schedulers.process.systemd import SystemdManager
from schedulers.process.systemd_unit import SpecError, quote_word, render, unit_name, validate_spec
from tests.helpers import wait_until
from tests.schedulers.process_helpers import FleetShell, sh, ticker

pytestmark = pytest.mark.fleet
PREFIX = "optest-"


@pytest.fixture(scope="module")
def shell(fleet_kinds, systemd_host):
    shell = FleetShell(fleet_kinds, systemd_host)
    yield shell
    shell.close()


@pytest.fixture
def manager(shell):
    return SystemdManager(shell, prefix=PREFIX)


@pytest.fixture
def program(manager, unique):
    """A program name for this test; its unit is removed afterwards, whatever happened."""
    name = unique.removeprefix("opsportal-test-")
    yield name
    manager.remove(name)


# -- without a host ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "a b", "x;touch /tmp/pwned", "../../etc/passwd", "-H", "@.service",
                                 "x\nExecStartPre=/bin/touch /tmp/pwned", "a" * 260])
def test_bad_unit_names_are_refused(bad):
    with pytest.raises(SpecError):
        unit_name(bad)


def test_quoting_keeps_quotes_dollars_percents_and_backslashes_literal():
    assert quote_word('a "b" $HOME 50% \\') == '"a \\"b\\" $$HOME 50%% \\\\"'
    assert quote_word("$x %n", exec_line=False) == '"$x %%n"'
    text = render(validate_spec(ProgramSpec(name="w", command=["/bin/echo", ";", "a b"])), "w.service")
    assert 'ExecStart="/bin/echo" ";" "a b"' in text


# -- against systemd -----------------------------------------------------------------------


def test_detect_reports_version_and_what_this_cgroup_setup_supports(manager, fleet_kinds, systemd_host):
    info = manager.detect()
    assert info.available and info.name == "systemd"
    assert int(info.version.split("~")[0]) >= 240
    v2 = sh(fleet_kinds, systemd_host, "stat -fc %T /sys/fs/cgroup").stdout.strip() == "cgroup2fs"
    assert ("freeze" in info.supports) == v2
    if not v2:
        assert "cgroup v1" in manager.why_not["freeze"]
    assert "scale" not in info.supports and "scale" in manager.why_not


def test_a_host_without_systemd_is_unavailable_in_plain_words(fleet_kinds, pm2_host):
    shell = FleetShell(fleet_kinds, pm2_host)
    try:
        manager = SystemdManager(shell)
        info = manager.detect()
        assert not info.available
        assert info.reason == "systemd is not installed on pm2-01 (no systemctl)"
        with pytest.raises(ManagerUnavailable, match="systemd is not installed"):
            manager.programs()
    finally:
        shell.close()


class CannedShell(Shell):
    """Answers the detection script with canned facts; anything else is a test failure."""

    name = "canned"

    def __init__(self, facts):
        self.facts = facts

    def run(self, argv, **kwargs):
        assert argv[:2] == ["sh", "-c"], argv
        return ShellResult(0, self.facts.encode(), b"")

    def stream(self, argv, **kwargs):
        raise AssertionError(argv)


@pytest.mark.parametrize("facts, reason", [
    ("pid1=tini\nversion=systemd 252 (252.39-1)\nsystem=offline\n", "did not boot systemd: its PID 1 is tini"),
    ("pid1=systemd\nversion=systemd 219\nsystem=running\n", "systemd 219 is older than 240"),
    ("pid1=systemd\nversion=something else\nsystem=running\n", "cannot tell the systemd version"),
    ("pid1=systemd\nversion=systemd 252\nsystem=Failed to connect to bus\n", "does not answer"),
])
def test_a_host_whose_systemd_cannot_be_used_says_why(facts, reason):
    manager = SystemdManager(CannedShell(facts))
    assert reason in manager.detect().reason
    with pytest.raises(ManagerUnavailable, match=reason.split(":")[0]):
        manager.status("web")


def test_programs_lists_the_hosts_services_once_each(shell):
    found = {p.name: p for p in SystemdManager(shell).programs()}
    assert found["ssh"].state == "running" and found["ssh"].pids
    assert found["supervisor"].state == "running"
    assert "sshd" not in found  # an alias of ssh.service
    assert found["ssh"].extra["unit"] == "ssh.service"


def test_apply_creates_a_running_unit_and_applies_only_changes(manager, program, fleet_kinds, systemd_host):
    weird = 'he said "hi" $HOME 100% \\ ; `id`'
    assert manager.apply(ticker(program, environment={"GREETING": weird}, memory_max=64 << 20, cpu_quota=50,
                                tasks_max=32, nofile=1024)) is True
    status = manager.status(program)
    assert status.state == "running" and status.extra["managed"] and status.restarts == 0
    assert status.limits == {"memory_max": 64 << 20, "cpu_quota": 50, "tasks_max": 32, "nofile": 1024}
    pid = status.pids[0]
    limits = sh(fleet_kinds, systemd_host, f"grep 'Max open files' /proc/{pid}/limits; "
                                           f"tr '\\0' '\\n' </proc/{pid}/environ | grep ^GREETING=").stdout
    assert "1024" in limits.splitlines()[0]
    assert limits.splitlines()[1] == f"GREETING={weird}"

    assert manager.apply(ticker(program, environment={"GREETING": weird}, memory_max=64 << 20, cpu_quota=50,
                                tasks_max=32, nofile=1024)) is False
    assert manager.status(program).pids == [pid]  # unchanged: not restarted
    assert manager.apply(ticker(program, environment={"GREETING": "changed"})) is True
    assert manager.status(program).pids != [pid]


def test_a_killed_program_is_restarted_and_counted(manager, program, fleet_kinds, systemd_host):
    manager.apply(ticker(program))
    pid = manager.status(program).pids[0]
    assert sh(fleet_kinds, systemd_host, f"kill -KILL {pid}").ok
    status = wait_until(lambda: (s := manager.status(program)).state == "running" and s.pids != [pid] and s,
                        15, interval=0.3)
    assert status, manager.status(program)
    assert status.restarts == 1
    assert status.extra["last_exit"]["code"] == "killed" and status.extra["last_exit"]["status"] == "KILL"


def test_pause_stops_every_process_and_resume_continues_them(manager, program, fleet_kinds, systemd_host):
    manager.apply(ticker(program))
    paused = manager.act(program, "pause")
    assert paused.state == "paused"
    unit = manager.unit(program)
    states = [stat for owner, stat in (line.split() for line in sh(fleet_kinds, systemd_host,
                                                                   "ps -e -o unit=,stat=").stdout.splitlines())
              if owner == unit]
    assert states and all(s.startswith("T") for s in states)
    resumed = manager.act(program, "resume")
    assert resumed.state == "running"
    pid = resumed.pids[0]
    assert not sh(fleet_kinds, systemd_host, f"ps -o stat= -p {pid}").stdout.startswith("T")


def test_a_memory_hog_is_stopped_by_its_limit_and_the_manager_says_so(manager, program):
    grow = "import time; b=[]; [b.append(bytearray(8 << 20)) or time.sleep(0.05) for _ in range(100)]"
    hog = ProgramSpec(name=program, command=["/usr/bin/python3", "-c", grow], memory_max=48 << 20,
                      autorestart="false", startsecs=0)
    manager.apply(hog)
    status = wait_until(lambda: (s := manager.status(program)).state not in ("running", "starting") and s,
                        20, interval=0.3)
    assert status and status.extra.get("oom_killed") is True, status
    assert "memory limit" in status.extra["reason"] and str(48 << 20) in status.extra["reason"]
    assert status.extra["result"] in ("oom-kill", "signal")


def test_a_crash_loop_ends_in_fatal_with_its_restarts_counted(manager, program):
    crasher = ProgramSpec(name=program, command=["/bin/sh", "-c", "echo dying >&2; exit 3"], autorestart="true",
                          startsecs=0, startretries=2)
    manager.apply(crasher)
    status = wait_until(lambda: (s := manager.status(program)).state == "fatal" and s, 30, interval=0.3)
    assert status, manager.status(program)
    assert status.extra["crash_loop"] and "crash loop" in status.extra["reason"]
    assert status.restarts == 3  # startretries=2: the first start and two retries fail, a third is refused
    assert "dying" in manager.logs(program)


def test_a_program_that_fails_to_start_is_rolled_back_with_its_output(manager, program, fleet_kinds, systemd_host):
    bad = ProgramSpec(name=program, command=["/bin/sh", "-c", "echo cannot-open-config >&2; exit 2"], startsecs=1)
    with pytest.raises(ProcessError, match="cannot-open-config") as failed:
        manager.apply(bad)
    assert "restored" in str(failed.value)
    unit = manager.unit(program)
    assert not sh(fleet_kinds, systemd_host, f"test -e /etc/systemd/system/{unit}").ok
    with pytest.raises(ProcessError, match="no unit"):
        manager.status(program)


def _look_late(manager, monkeypatch, seconds):
    """Make the manager's first look after a restart come `seconds` late, as over a slow link."""
    show, late = manager._show, [True]

    def slow_show(units):
        if late and late.pop():
            time.sleep(seconds)
        return show(units)

    original = manager._systemctl

    def systemctl(*args, **kwargs):
        result = original(*args, **kwargs)
        if args[0] == "restart":
            monkeypatch.setattr(manager, "_show", slow_show)
        return result

    monkeypatch.setattr(manager, "_systemctl", systemctl)


def test_a_program_that_stayed_up_long_enough_is_accepted_however_late_the_portal_looks(manager, program,
                                                                                          monkeypatch):
    # Lives 2 s then crashes (restarted after RestartSec); startsecs=1; the first look comes after 4.5 s.
    _look_late(manager, monkeypatch, 4.5)
    assert manager.apply(ProgramSpec(name=program, command=["/bin/sh", "-c", "sleep 2; exit 3"], startsecs=1,
                                     autorestart="true"))


def test_a_program_that_died_too_soon_is_refused_however_late_the_portal_looks(manager, program, monkeypatch):
    # Dies at once, restarted after RestartSec, dies again...; the first look comes after 3.5 s. The
    # bound on the first life also holds each cycle's stop hook and scheduling, so startsecs is well
    # above what a loaded host adds to three short cycles.
    _look_late(manager, monkeypatch, 3.5)
    with pytest.raises(ProcessError, match="did not stay up for 10s"):
        manager.apply(ProgramSpec(name=program, command=["/bin/sh", "-c", "exit 3"], startsecs=10,
                                  autorestart="true"))


def test_lines_written_appear_in_follow(manager, program):
    manager.apply(ticker(program, every=0.2))
    seen, cancel = [], CancelToken()

    def on_line(stream, text):
        seen.append((stream, text))
        if len(seen) >= 3:
            cancel.cancel()

    follower = threading.Thread(target=manager.follow, args=(program,),
                                kwargs={"on_line": on_line, "cancel": cancel})
    started = time.monotonic()
    follower.start()
    follower.join(30)
    assert not follower.is_alive(), "follow did not end after cancel"
    assert len(seen) >= 3 and all(text.startswith("line ") for _, text in seen)
    numbers = [int(text.split()[1]) for _, text in seen]
    assert numbers == sorted(numbers) and time.monotonic() - started < 30


def test_start_stop_restart_enable_disable(manager, program):
    manager.apply(ticker(program))
    assert manager.act(program, "stop").state == "stopped"
    assert manager.act(program, "start").state == "running"
    pid = manager.status(program).pids
    assert manager.act(program, "restart").pids != pid
    assert manager.act(program, "disable").extra["enabled"] == "disabled"
    assert manager.act(program, "enable").extra["enabled"] == "enabled"
    with pytest.raises(ProcessError, match="nothing to scale"):
        manager.act(program, "scale")


@pytest.mark.parametrize("field, value", [
    ("name", "x;touch /tmp/pwned"),
    ("name", "../x"),
    ("command", ["/bin/sh", "-c", "true\nExecStartPre=/bin/touch /tmp/pwned"]),
    ("command", ["touch", "/tmp/pwned"]),
    ("environment", {"A B": "1"}),
    ("environment", {"A": "1\nExecStartPre=/bin/touch /tmp/pwned"}),
    ("user", "root\nExecStartPre=/bin/touch /tmp/pwned"),
    ("directory", "/tmp\nExecStartPre=/bin/touch /tmp/pwned"),
    ("stopsignal", "TERM; touch /tmp/pwned"),
])
def test_injection_in_names_commands_and_environment_is_refused_before_anything_runs(shell, field, value):
    fresh = FleetShell(shell.fleet, shell.host)
    try:
        manager = SystemdManager(fresh, prefix=PREFIX)
        spec = ProgramSpec(name="inj", command=["/bin/true"])
        setattr(spec, field, value)
        with pytest.raises(SpecError):
            manager.apply(spec)
        with pytest.raises(SpecError):
            manager.act("x;touch /tmp/pwned", "start")
        assert fresh.calls == []
    finally:
        fresh.close()


def test_shell_metacharacters_reach_the_program_as_plain_arguments(manager, program, fleet_kinds, systemd_host):
    sh(fleet_kinds, systemd_host, "rm -f /tmp/pwned")
    arg = 'a" ; touch /tmp/pwned ; "b $(touch /tmp/pwned) %n \\'
    manager.apply(ProgramSpec(name=program, command=["/bin/sh", "-c", 'echo "ARG=$1"; sleep 60', "sh", arg]))
    assert wait_until(lambda: f"ARG={arg}" in manager.logs(program), 10, interval=0.3)
    assert not sh(fleet_kinds, systemd_host, "test -e /tmp/pwned").ok


def test_unknown_units_are_errors_and_foreign_units_are_left_alone(manager, shell):
    for call in (lambda: manager.status("no-such-program"), lambda: manager.act("no-such-program", "start"),
                 lambda: manager.logs("no-such-program")):
        with pytest.raises(ProcessError, match="no unit optest-no-such-program.service"):
            call()
    assert manager.remove("no-such-program") is False
    with pytest.raises(ProcessError, match="not written by the portal"):
        SystemdManager(shell).remove("sshd")  # /etc/systemd/system/sshd.service: Debian's alias of ssh


def test_a_signal_reaches_the_program(manager, program):
    trap = 'trap "echo got-usr1" USR1; echo ready; while true; do sleep 0.2; done'
    manager.apply(ProgramSpec(name=program, command=["/bin/sh", "-c", trap]))
    assert wait_until(lambda: "ready" in manager.logs(program), 10, interval=0.3)
    status = manager.act(program, "signal", signal="USR1", whom="main")
    assert status.state == "running"
    assert wait_until(lambda: "got-usr1" in manager.logs(program), 10, interval=0.3)
    with pytest.raises(SpecError):
        manager.act(program, "signal", signal="USR1; reboot")
