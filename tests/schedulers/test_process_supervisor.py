"""supervisord through its unix socket: programs, actions, restarts counted, limits, logs, bad input."""

import threading
import time
from dataclasses import replace

import pytest

from schedulers.base import CancelToken
from schedulers.process.base import ManagerUnavailable, ProcessError, ProgramSpec, Shell
from schedulers.process.shells import SSHShell
from schedulers.process.supervisor import SupervisorManager, install_plan
from schedulers.process.supervisor_conf import SpecError, render

TICKING = ["/bin/sh", "-c", 'i=0; while true; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; sleep 0.3; done']


class NoShell(Shell):
    """A Shell that fails the test if anything is sent to the host."""

    name = "nowhere"
    calls = 0

    def run(self, argv, **kwargs):
        NoShell.calls += 1
        raise AssertionError(f"sent to the host: {argv[:2]}")

    def stream(self, argv, **kwargs):
        return self.run(argv)


HOSTILE_SPECS = [
    {"name": "a/b"}, {"name": "../etc/passwd"}, {"name": "x]\n[program:evil"}, {"name": "-x"}, {"name": ".x"},
    {"name": "a b"}, {"name": "x;reboot"}, {"name": ""}, {"name": "x" * 65},
    {"command": []}, {"command": "sleep 1"}, {"command": ["sleep", "1\n[program:evil]\ncommand=/bin/evil"]},
    {"command": ["sleep", "1 ; comment"]}, {"command": ["echo", "a\tb #x"]}, {"command": ["echo", "%(here)s"]},
    {"command": ["echo", "\x00"]}, {"command": ["echo", "a\u2028b"]}, {"command": [""]},
    {"environment": {"A B": "x"}}, {"environment": {"A=B": "x"}}, {"environment": {"1A": "x"}},
    {"environment": {"A": "x\ny"}}, {"environment": {"A": "'quoted'"}}, {"environment": {"A": "it's \"both\" x"}},
    {"environment": {"A": "x ;y"}}, {"environment": {"A": 3}},
    {"user": "root\nx"}, {"user": "a b"}, {"directory": "relative"}, {"directory": "/a/../etc"},
    {"directory": "/tmp/%(here)s"}, {"autorestart": "always"}, {"stopsignal": "TERM\nuser=root"},
    {"numprocs": 0}, {"numprocs": True}, {"startsecs": -1}, {"cpu_quota": 50}, {"memory_max": 1024},
]


@pytest.mark.parametrize("change", HOSTILE_SPECS, ids=[str(c)[:40] for c in HOSTILE_SPECS])
def test_bad_or_hostile_specs_are_refused_before_anything_is_sent(change):
    spec = replace(ProgramSpec(name="ok", command=["sleep", "1"]), **change)
    before = NoShell.calls
    with pytest.raises(SpecError):
        SupervisorManager(NoShell()).apply(spec)
    assert NoShell.calls == before


@pytest.mark.parametrize("name", ["a b", "x;id", "../x", "x\ny", "a:b:c", "", "*", "x:*"])
def test_bad_program_names_are_refused_before_anything_is_sent(name):
    manager = SupervisorManager(NoShell())
    for call in (lambda: manager.act(name, "start"), lambda: manager.logs(name), lambda: manager.remove(name),
                 lambda: manager.follow(name, on_line=print, cancel=CancelToken())):
        with pytest.raises(ProcessError):
            call()


def test_only_known_signals_are_sent():
    for bad in ("9; reboot", "SIGFOO", "", "KILL\n"):
        with pytest.raises(ProcessError, match="signal must be one of"):
            SupervisorManager(NoShell()).act("x", "signal", signal=bad)


def test_actions_supervisord_lacks_are_refused_in_plain_words():
    manager = SupervisorManager(NoShell())
    with pytest.raises(ProcessError, match="cannot reload a program"):
        manager.act("x", "reload")
    with pytest.raises(ProcessError, match="set autostart"):
        manager.act("x", "enable")


def test_the_config_carries_quoted_values_and_the_spec():
    spec = ProgramSpec(name="web", command=["/usr/bin/env", "it's", "100%"], environment={"A": 'say "hi" now'},
                       memory_max=64 * 2**20, nofile=100)
    text = render(spec)
    assert "command=/usr/bin/python3 /usr/local/lib/opsportal/limit-exec --memory 67108864 --nofile 100 -- " \
           "/usr/bin/env 'it'\"'\"'s' 100%%\n" in text
    assert "environment=A='say \"hi\" now'\n" in text
    assert text.splitlines()[1].startswith("; opsportal-spec: {")


def test_the_install_plan_is_a_host_command():
    plan = install_plan()
    assert plan["action"] == "host.command" and "apt-get install -y -q supervisor" in plan["values"]["command"]


# Against supervisord on fleet hosts --------------------------------------------------------------

@pytest.fixture
def manager(pool, targets):
    return SupervisorManager(SSHShell(pool, targets[0]))


@pytest.fixture
def program(manager, unique):
    """A fresh program name; whatever the test applied under it is removed afterwards."""
    name = unique.replace("opsportal-test-", "t")
    yield name
    manager.remove(name)


def wait_for(manager, name, states, timeout=20.0, check=None):
    deadline = time.monotonic() + timeout
    while True:
        status = manager.status(name)
        if status.state in states and (check is None or check(status)):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stayed {status.state} ({status.description}), wanted {states}")
        time.sleep(0.3)


def host_dir(fleet, host, path="/etc/supervisor/conf.d"):
    return fleet.exec(host, f"ls -A {path}; md5sum {path}/*").check().stdout


@pytest.mark.fleet
def test_detect_reports_version_and_actions(manager):
    info = manager.detect()
    assert info.available and info.version.startswith("4.") and {"pause", "scale", "apply"} <= info.supports


@pytest.mark.fleet
def test_apply_runs_a_program_with_its_argv_and_environment_exactly(fleet, manager, program, targets):
    argv = ["/bin/sh", "-c", 'echo "$@"; exec sleep 300', "sh", "it's", "a;b", "100%", "$HOME", "x=y", "ü"]
    env = {"A": "x y, z", "B": "it's", "C": 'say "hi" now', "D": "100%", "E": "", "F": "$HOME;`id`", "G": 'x",B="y'}
    spec = ProgramSpec(name=program, command=argv, environment=env, startsecs=1)
    assert manager.apply(spec) is True
    assert manager.apply(spec) is False, "an unchanged spec is not applied again"
    status = wait_for(manager, program, {"running"})
    pid = status.pids[0]
    assert status.extra["managed"] is True and status.restarts == 0
    cmdline = fleet.exec(targets[0].name, f"cat /proc/{pid}/cmdline").check().stdout
    assert cmdline.split("\0")[:-1] == ["sleep", "300"]
    assert manager.logs(program) == ["it's a;b 100% $HOME x=y ü"]
    environ = fleet.exec(targets[0].name, f"cat /proc/{pid}/environ").check().stdout.split("\0")
    assert {k: v for k, v in (item.split("=", 1) for item in environ if "=" in item) if k in env} == env


@pytest.mark.fleet
def test_a_program_killed_from_outside_is_restarted_and_counted(fleet, manager, program, targets):
    manager.apply(ProgramSpec(name=program, command=["sleep", "300"], autorestart="true", startsecs=1))
    first = wait_for(manager, program, {"running"})
    fleet.exec(targets[0].name, ["kill", "-KILL", str(first.pids[0])]).check()
    second = wait_for(manager, program, {"running"}, check=lambda s: s.pids and s.pids != first.pids)
    assert second.restarts == 1
    assert second.extra["last_exits"][-1]["pid"] == first.pids[0]
    assert second.extra["exit_reason"] == "terminated by SIGKILL; not expected"
    assert second.extra["crash_loop"] is False
    manager.act(program, "restart")  # a restart by hand is not a crash
    assert manager.status(program).restarts == 1


@pytest.mark.fleet
def test_a_crashing_program_shows_a_crash_loop_with_its_stderr(manager, program):
    manager.apply(ProgramSpec(name=program, command=["sh", "-c", "echo 'cannot open db' >&2; exit 3"],
                              autorestart="true", startsecs=1, startretries=2))
    status = wait_for(manager, program, {"fatal"}, timeout=30)
    assert status.extra["crash_loop"] is True and status.restarts >= 2
    assert status.exit_code == 3 and "cannot open db" in status.extra["stderr_tail"]
    assert status.extra["exit_reason"] == "exit status 3; not expected"


@pytest.mark.fleet
def test_a_program_that_fails_to_start_says_why_with_its_stderr(manager, program):
    manager.apply(ProgramSpec(name=program, command=["sh", "-c", "echo 'missing config file' >&2; exit 1"],
                              autostart=False, startsecs=1, startretries=0))
    with pytest.raises(ProcessError, match="failed to start.*missing config file"):
        manager.act(program, "start")


@pytest.mark.fleet
def test_pause_stops_the_process_and_resume_continues_it(fleet, manager, program, targets):
    manager.apply(ProgramSpec(name=program, command=TICKING, startsecs=1))
    pid = wait_for(manager, program, {"running"}).pids[0]

    def kernel_state():
        return fleet.exec(targets[0].name, f"cut -d' ' -f3 /proc/{pid}/stat").check().stdout.strip()

    assert manager.act(program, "pause").state == "paused" and kernel_state() == "T"
    assert manager.act(program, "resume").state == "running" and kernel_state() in ("S", "R")
    manager.act(program, "pause")
    assert manager.act(program, "stop").state == "stopped", "a paused program can still be stopped"


@pytest.mark.fleet
def test_signal_reaches_the_program_and_a_stopped_one_is_refused(manager, program):
    trap = 'trap "echo got-usr1" USR1; echo ready; while true; do sleep 0.1; done'
    manager.apply(ProgramSpec(name=program, command=["sh", "-c", trap], startsecs=1))
    wait_for(manager, program, {"running"}, check=lambda s: manager.logs(program) == ["ready"])
    manager.act(program, "signal", signal="SIGUSR1")
    deadline = time.monotonic() + 10
    while manager.logs(program)[-1] != "got-usr1":
        assert time.monotonic() < deadline, manager.logs(program)
        time.sleep(0.2)
    manager.act(program, "stop")
    with pytest.raises(ProcessError, match="is not running"):
        manager.act(program, "signal", signal="HUP")


@pytest.mark.fleet
def test_a_memory_hog_is_stopped_by_its_limit_and_the_status_says_so(manager, program):
    hog = 'exec("import time\\nblocks = []\\nwhile True:\\n    blocks.append(bytearray(2**20)); time.sleep(0.01)")'
    spec = ProgramSpec(name=program, command=["python3", "-c", hog], autorestart="false", startsecs=0,
                       memory_max=48 * 2**20, nofile=200)
    manager.apply(spec)
    status = wait_for(manager, program, {"exited"}, timeout=30)
    assert status.extra["exit_reason"].startswith("stopped for going over its memory limit")
    assert status.description.startswith("stopped for going over its memory limit")
    assert status.limits["memory_max"]["value"] == 48 * 2**20
    assert status.limits["nofile"]["enforced_by"] == "kernel: RLIMIT_NOFILE"


@pytest.mark.fleet
def test_lines_a_program_writes_arrive_in_follow(manager, program):
    manager.apply(ProgramSpec(name=program, command=TICKING, startsecs=1))
    wait_for(manager, program, {"running"})
    seen, cancel = [], CancelToken()
    threading.Timer(2.5, cancel.cancel).start()
    manager.follow(program, on_line=lambda stream, text: seen.append((stream, text)), cancel=cancel)
    numbers = [int(text.split()[1]) for stream, text in seen if stream == "stdout"]
    assert len(numbers) >= 4 and numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    errors, cancel = [], CancelToken()
    threading.Timer(1.5, cancel.cancel).start()
    manager.follow(program, on_line=lambda stream, text: errors.append((stream, text)), cancel=cancel,
                   stream="stderr")
    assert errors and all(stream == "stderr" and text.startswith("err ") for stream, text in errors)
    assert manager.logs(program, stream="stderr", lines=2)[-1].startswith("err ")


@pytest.mark.fleet
def test_scale_changes_numprocs_of_a_portal_program(manager, program):
    manager.apply(ProgramSpec(name=program, command=["sleep", "300"], startsecs=1))
    wait_for(manager, program, {"running"})
    status = manager.act(program, "scale", numprocs=3)
    status = wait_for(manager, program, {"running"}, check=lambda s: len(s.pids) == 3)
    assert status.extra["processes"] == [f"{program}:{program}_{i:02d}" for i in range(3)]
    assert manager.spec(program).numprocs == 3
    with pytest.raises(ProcessError, match="not written by the portal"):
        manager.act("sleeper", "scale", numprocs=2)


@pytest.mark.fleet
def test_unknown_programs_get_plain_errors(manager):
    for call in (lambda: manager.act("no-such-program", "start"), lambda: manager.status("no-such-program"),
                 lambda: manager.logs("no-such-program"), lambda: manager.act("no-such-program", "pause")):
        with pytest.raises(ProcessError, match="has no program 'no-such-program'"):
            call()


@pytest.mark.fleet
def test_programs_the_portal_did_not_write_are_not_removed_or_overwritten(fleet, manager, targets):
    before = host_dir(fleet, targets[0].name)
    with pytest.raises(ProcessError, match="fleet-demo.conf, which the portal does not manage"):
        manager.remove("sleeper")
    with pytest.raises(ProcessError, match="fleet-demo.conf, which the portal does not manage"):
        manager.apply(ProgramSpec(name="sleeper", command=["/bin/evil"]))
    assert host_dir(fleet, targets[0].name) == before
    assert manager.status("sleeper").state == "running"


@pytest.mark.fleet
def test_a_config_supervisord_refuses_changes_nothing(fleet, manager, program, targets):
    before = host_dir(fleet, targets[0].name)
    with pytest.raises(ProcessError, match="refused the configuration.*nothing was changed"):
        manager.apply(ProgramSpec(name=program, command=["sleep", "1"], user="no-such-user"))
    assert host_dir(fleet, targets[0].name) == before
    assert program not in {s.group for s in manager.programs()}


@pytest.mark.fleet
def test_hostile_specs_change_nothing_on_a_real_host(fleet, manager, targets):
    before, programs = host_dir(fleet, targets[0].name), [s.name for s in manager.programs()]
    for change in HOSTILE_SPECS:
        with pytest.raises(SpecError):
            manager.apply(replace(ProgramSpec(name="ok", command=["sleep", "1"]), **change))
    assert host_dir(fleet, targets[0].name) == before
    assert [s.name for s in manager.programs()] == programs


@pytest.mark.fleet
def test_a_stopped_supervisord_is_unavailable_and_a_missing_one_says_so(fleet, pool, targets):
    host = targets[2].name
    manager = SupervisorManager(SSHShell(pool, targets[2]))
    fleet.exec(host, "supervisorctl shutdown; while pgrep -x supervisord >/dev/null; do sleep 0.2; done").check()
    try:
        with pytest.raises(ManagerUnavailable, match="supervisord is not running"):
            manager.programs()
        info = manager.detect()
        assert not info.available and "not running" in info.reason
        fleet.exec(host, "mv /etc/supervisor /etc/supervisor.away").check()
        info = manager.detect()
        assert not info.available and "not installed" in info.reason
    finally:
        fleet.exec(host, "[ -d /etc/supervisor.away ] && mv /etc/supervisor.away /etc/supervisor; "
                         "supervisord -c /etc/supervisor/supervisord.conf").check()
    deadline = time.monotonic() + 15
    while not manager.detect().available:
        assert time.monotonic() < deadline, "supervisord did not come back"
        time.sleep(0.3)
