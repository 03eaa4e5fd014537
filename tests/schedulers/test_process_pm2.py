"""The PM2 manager against the real PM2 daemon of a fleet host."""
import json
import threading

import pytest

from fleet.recipes import REPO_ROOT
from schedulers.base import CancelToken
from schedulers.process.base import ManagerUnavailable, ProcessError, ProgramSpec
from schedulers.process.pm2 import PM2Manager, ecosystem
from schedulers.process.systemd_unit import SpecError
from tests.helpers import wait_until
from tests.schedulers.process_helpers import FleetShell, sh, ticker

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def shell(fleet_kinds, pm2_host):
    shell = FleetShell(fleet_kinds, pm2_host)
    yield shell
    shell.close()


@pytest.fixture
def manager(shell):
    return PM2Manager(shell)


@pytest.fixture
def program(manager, unique):
    name = "app-" + unique.removeprefix("opsportal-test-")
    yield name
    manager.remove(name)


def test_limits_pm2_cannot_enforce_are_refused():
    with pytest.raises(SpecError, match="cannot limit CPU"):
        ecosystem(ProgramSpec(name="w", command=["/bin/true"], cpu_quota=50))
    app = ecosystem(ProgramSpec(name="w", command=["/bin/echo", "a b"], memory_max=64 << 20, nofile=256))["apps"][0]
    assert app["script"] == "/usr/bin/prlimit" and app["args"] == ["--nofile=256:256", "--", "/bin/echo", "a b"]
    assert app["max_memory_restart"] == "65536K" and app["interpreter"] == "none"


def test_detect_reports_the_pinned_version(manager):
    lock = json.loads((REPO_ROOT / "fleet/images/pm2/npm/package-lock.json").read_text())
    info = manager.detect()
    assert info.available and info.version == lock["packages"]["node_modules/pm2"]["version"]
    assert {"scale", "pause", "apply", "logs"} <= info.supports and "freeze" not in info.supports


def test_a_host_without_pm2_or_with_a_dead_daemon_is_unavailable_in_plain_words(fleet_kinds, systemd_host, shell):
    other = FleetShell(fleet_kinds, systemd_host)
    try:
        with pytest.raises(ManagerUnavailable, match="PM2 is not installed on systemd-01"):
            PM2Manager(other).programs()
    finally:
        other.close()
    # A PM2 home the daemon cannot be started in: the CLI fails, the manager says so.
    with pytest.raises(ManagerUnavailable, match="daemon on pm2-01 is not running and cannot start: its home "
                                                 "/proc/opsportal-no-such-home cannot be written"):
        PM2Manager(shell, pm2_home="/proc/opsportal-no-such-home").programs()


def test_apply_starts_the_app_and_applies_only_changes(manager, program, fleet_kinds, pm2_host):
    weird = 'he said "hi" $HOME 100% \\ ; `id`'
    assert manager.apply(ticker(program, environment={"GREETING": weird}, memory_max=256 << 20, nofile=1024))
    status = manager.status(program)
    assert status.state == "running" and status.restarts == 0
    assert status.limits == {"memory_max": 256 << 20}
    pid = status.pids[0]
    out = sh(fleet_kinds, pm2_host, f"grep 'Max open files' /proc/{pid}/limits; "
                                    f"tr '\\0' '\\n' </proc/{pid}/environ | grep ^GREETING=").stdout.splitlines()
    assert "1024" in out[0] and out[1] == f"GREETING={weird}"
    assert manager.apply(ticker(program, environment={"GREETING": weird}, memory_max=256 << 20,
                                nofile=1024)) is False
    assert manager.status(program).pids == [pid]
    assert manager.apply(ticker(program, environment={"GREETING": "changed"})) is True
    assert manager.status(program).pids != [pid]


def test_a_killed_app_is_restarted_and_counted(manager, program, fleet_kinds, pm2_host):
    manager.apply(ticker(program))
    pid = manager.status(program).pids[0]
    assert sh(fleet_kinds, pm2_host, f"kill -KILL {pid}").ok
    status = wait_until(lambda: (s := manager.status(program)).state == "running" and s.pids != [pid] and s,
                        15, interval=0.3)
    assert status, manager.status(program)
    assert status.restarts == 1


def test_pause_stops_the_app_and_resume_continues_it(manager, program, fleet_kinds, pm2_host):
    manager.apply(ticker(program))
    paused = manager.act(program, "pause")
    assert paused.state == "paused"
    assert sh(fleet_kinds, pm2_host, f"ps -o stat= -p {paused.pids[0]}").stdout.startswith("T")
    resumed = manager.act(program, "resume")
    assert resumed.state == "running"
    assert not sh(fleet_kinds, pm2_host, f"ps -o stat= -p {resumed.pids[0]}").stdout.startswith("T")


def test_a_memory_hog_is_restarted_by_its_limit_and_the_manager_says_so(manager, program):
    # Grows to about 200 MB and holds it; PM2 checks every PM2_WORKER_INTERVAL (2 s on the fleet host).
    grow = "import time; b=[bytearray(10 << 20) for _ in range(20)]; time.sleep(600)"
    manager.apply(ProgramSpec(name=program, command=["/usr/bin/python3", "-c", grow], memory_max=64 << 20,
                              startsecs=0))
    status = wait_until(lambda: (s := manager.status(program)).extra.get("memory_restarts") and s, 30, interval=0.3)
    assert status, manager.status(program)
    assert status.restarts >= 1
    assert "memory limit" in status.extra["reason"] and str(64 << 20) in status.extra["reason"]


def test_scale_runs_more_instances(manager, program):
    manager.apply(ticker(program))
    scaled = manager.act(program, "scale", instances=2)
    assert len(scaled.extra["instances"]) == 2
    assert wait_until(lambda: len(manager.status(program).pids) == 2, 10, interval=0.3)
    assert len(manager.act(program, "scale", instances=1).extra["instances"]) == 1


def test_stop_start_and_stderr_logs(manager, program):
    manager.apply(ProgramSpec(name=program, command=["/bin/sh", "-c", "echo to-out; echo to-err >&2; sleep 600"]))
    assert wait_until(lambda: "to-err" in manager.logs(program, stream="stderr"), 10, interval=0.3)
    assert "to-out" in manager.logs(program) and "to-err" not in manager.logs(program)
    assert manager.act(program, "stop").state == "stopped"
    assert manager.act(program, "start").state == "running"


def test_lines_written_appear_in_follow(manager, program):
    manager.apply(ticker(program, every=0.2))
    seen, cancel = [], CancelToken()

    def on_line(stream, text):
        seen.append((stream, text))
        if len(seen) >= 3:
            cancel.cancel()

    follower = threading.Thread(target=manager.follow, args=(program,), kwargs={"on_line": on_line, "cancel": cancel})
    follower.start()
    follower.join(30)
    assert not follower.is_alive(), "follow did not end after cancel"
    numbers = [int(text.split()[1]) for _, text in seen]
    assert len(seen) == 3 and numbers == sorted(numbers) and all(s == "stdout" for s, _ in seen)


def test_an_app_that_fails_to_start_is_rolled_back_with_its_stderr(manager, program, fleet_kinds, pm2_host):
    bad = ProgramSpec(name=program, command=["/bin/sh", "-c", "echo cannot-open-config >&2; exit 2"], startsecs=1)
    with pytest.raises(ProcessError, match="cannot-open-config") as failed:
        manager.apply(bad)
    assert "restored" in str(failed.value)
    assert program not in {p.name for p in manager.programs()}
    assert not sh(fleet_kinds, pm2_host, f"test -e /root/.pm2/opsportal/{program}.json").ok


@pytest.mark.parametrize("field, value", [
    ("name", "x;touch /tmp/pwned"),
    ("name", "all"),
    ("name", "42"),
    ("name", "7web"),
    ("command", ["/bin/sh", "-c", "true\ntouch /tmp/pwned"]),
    ("command", ["touch", "/tmp/pwned"]),
    ("environment", {"A B": "1"}),
    ("environment", {"A": "1\n2"}),
    ("cpu_quota", 50),
])
def test_injection_in_names_commands_and_environment_is_refused_before_anything_runs(shell, field, value):
    fresh = FleetShell(shell.fleet, shell.host)
    try:
        manager = PM2Manager(fresh)
        spec = ProgramSpec(name="inj", command=["/bin/true"])
        setattr(spec, field, value)
        with pytest.raises(SpecError):
            manager.apply(spec)
        with pytest.raises(SpecError):
            manager.act("x;touch /tmp/pwned", "stop")
        with pytest.raises(SpecError):
            PM2Manager(fresh, pm2_home="/root/.pm2; touch /tmp/pwned")
        assert fresh.calls == []
    finally:
        fresh.close()


def test_unknown_apps_are_errors(manager):
    for call in (lambda: manager.status("no-such-app"), lambda: manager.act("no-such-app", "restart"),
                 lambda: manager.logs("no-such-app")):
        with pytest.raises(ProcessError, match="no PM2 app no-such-app on pm2-01"):
            call()
    assert manager.remove("no-such-app") is False


def test_a_signal_reaches_the_app(manager, program):
    trap = 'trap "echo got-usr1" USR1; echo ready; while true; do sleep 0.2; done'
    manager.apply(ProgramSpec(name=program, command=["/bin/sh", "-c", trap]))
    assert wait_until(lambda: "ready" in manager.logs(program), 10, interval=0.3)
    assert manager.act(program, "signal", signal="USR1").state == "running"
    assert wait_until(lambda: "got-usr1" in manager.logs(program), 10, interval=0.3)

def test_the_json_is_read_even_when_pm2_starts_its_daemon_and_prints_its_banner(shell, fleet_kinds, pm2_host):
    """Runs last: it kills the daemon, which the next command starts again."""
    noisy = sh(fleet_kinds, pm2_host, "pm2 kill >/dev/null; pm2 jlist").stdout
    with pytest.raises(ValueError):  # without PM2_DISCRETE_MODE, PM2 talks before its JSON
        json.loads(noisy)
    assert sh(fleet_kinds, pm2_host, "pm2 kill >/dev/null").ok
    manager = PM2Manager(shell)
    assert manager.detect().reason == "daemon not running: it starts on first use"
    assert isinstance(manager.programs(), list)
    assert manager.detect().reason == "daemon running"
