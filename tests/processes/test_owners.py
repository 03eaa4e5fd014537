"""Which program owns a process, asked of the programs app: a program's own process is handed to
its manager (each process action mapped onto the manager's action, the program's status stored
afterwards); children of programs' processes, unmanaged processes and programs the portal does not
know are signaled directly, and the reason says why."""
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from ops_portal.processes import job_actions, owners, store
from ops_portal.processes.choices import KILL_ACTION, PAUSE_ACTION, RESUME_ACTION, SIGNAL_ACTION, STOP_ACTION
from ops_portal.processes.models import Process
from ops_portal.programs.models import Program, ProgramEvent
from schedulers.base import CancelToken
from schedulers.process.base import ManagerInfo, ProgramStatus
from tests import factories
from tests.processes.helpers import proc, snapshot
from tests.programs.helpers import program

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    host = factories.host(factories.environment("alpha"), "web-1")
    store.store_scan(host.pk, snapshot([
        proc(10, "python3", owner=("supervisord", "web:web_00"), main=True),
        proc(11, "worker", ppid=10, owner=("supervisord", "web:web_00")),
        proc(12, "bash"), proc(13, "app", owner=("container", "3f2a9c1d0e4b")),
        proc(14, "nginx", owner=("systemd", "nginx.service"), main=True)]))
    return host


def process(host, pid):
    return Process.objects.select_related("host").get(host=host, pid=pid)


def test_a_programs_own_process_goes_to_its_manager(host):
    web = program(host, "web", "supervisord", pids=[10])
    nginx = program(host, "nginx", "systemd")
    owner = owners.owning_program(process(host, 10))
    assert owner and owner.program == web and owner.reason == ""
    assert owners.program_url(owner.program) == f"/programs/{web.pk}/"
    assert owners.owning_program(process(host, 14)).program == nginx  # the unit, named without .service


def test_unmanaged_processes_and_children_of_programs_are_signaled_directly_with_the_reason(host):
    program(host, "web", "supervisord", pids=[10])
    assert owners.owning_program(process(host, 12)).reason == ""
    assert owners.owning_program(process(host, 13)).reason == ""
    child = owners.owning_program(process(host, 11))
    assert not child and child.reason == "it is a child of supervisord program web:web_00's own process, and the " \
                                         "manager would act on the whole program"


def test_a_process_whose_program_the_portal_does_not_know_says_so(host):
    elsewhere = factories.host(host.environment, "web-2")
    program(elsewhere, "web", "supervisord")  # the same name on another host is another program
    program(host, "web", "pm2")  # and under another manager too
    owner = owners.owning_program(process(host, 10))
    assert not owner and owner.reason == "it belongs to supervisord program web:web_00, which the portal does not " \
                                         "know as a program (refresh the host's programs)"


# Through the manager -------------------------------------------------------------------------

class Recorded:
    """A supervisord that answers from memory: web's two processes, and every call it was asked."""

    def __init__(self, calls, states):
        self.calls, self.states = calls, states

    def __call__(self, shell):
        return self

    def detect(self):
        return ManagerInfo("supervisord", True, "4.2.5", supports=frozenset({"stop", "signal", "pause", "resume"}))

    def _one(self, name):
        return ProgramStatus(manager="supervisord", name=name, group="web", state=self.states[name],
                             raw_state=self.states[name].upper(), pids=[10 if name.endswith("00") else 20],
                             restarts=0)

    def status(self, name):
        self.calls.append(("status", name))
        if name == "web":  # the program: both processes, its worst state (as supervisord's _aggregate)
            worst = next(s for s in ("fatal", "stopped", "paused", "running") if s in self.states.values())
            return ProgramStatus(manager="supervisord", name="web", group="web", state=worst,
                                 raw_state=worst.upper(), pids=[10, 20], restarts=0)
        return self._one(name)

    def act(self, name, action, **options):
        self.calls.append(("act", name, action, options))
        self.states[name] = {"pause": "paused", "stop": "stopped"}.get(action, "running")
        return self._one(name)


@pytest.fixture
def supervisord(monkeypatch):
    calls, checks = [], []
    manager = Recorded(calls, {"web:web_00": "running", "web:web_01": "running"})
    monkeypatch.setitem(job_actions.MANAGERS, "supervisord", manager)
    # The check that pid 10 is still this process runs on the host; here it only records.
    monkeypatch.setattr(job_actions.control, "act", lambda shell, pid, start, action, **kw: checks.append(
        (pid, start, action)))
    return calls, checks


def context(action, params):
    lines = []
    ctx = SimpleNamespace(job=SimpleNamespace(pk=77, action=action), params=params, cancel=CancelToken(),
                          output=lambda stream, text: lines.append(text), after=lambda func: func())
    return ctx, lines


@pytest.mark.parametrize("action, params, wanted, options", [
    (STOP_ACTION, {"grace_seconds": 3}, "stop", {}),
    (PAUSE_ACTION, {}, "pause", {}),
    (RESUME_ACTION, {}, "resume", {}),
    (KILL_ACTION, {}, "signal", {"signal": "KILL"}),
    (SIGNAL_ACTION, {"signal": "HUP"}, "signal", {"signal": "HUP"}),
])
def test_each_process_action_is_the_managers_action_and_the_program_is_stored(host, supervisord, action, params,
                                                                              wanted, options):
    calls, checks = supervisord
    seen = timezone.now() - timedelta(minutes=5)  # a refresh saw it running
    web = program(host, "web", "supervisord", pids=[10, 20], state="running", present=True, updated=seen)
    target = process(host, 10)
    ctx, lines = context(action, params)
    control_action, signame = job_actions._wanted(action, params)
    done = job_actions._through_manager(ctx, None, target, owners.owning_program(target), control_action, signame,
                                        10, target.start_time, 60)
    assert checks == [(10, target.start_time, "check")]  # checked before the manager was asked
    # Only this process of the group is acted on; the program's status is read for the whole program.
    assert calls == [("act", "web:web_00", wanted, options), ("status", "web")]
    assert done["via"] == "supervisord" and done["program"] == "web" and done["manager_action"] == wanted
    assert f"asking supervisord to {wanted} web:web_00" in lines[0]
    web.refresh_from_db()
    assert web.updated > seen and web.pids == [10, 20]
    assert web.state == {"pause": "paused", "stop": "stopped"}.get(wanted, "running")
    if wanted == "stop":
        assert ProgramEvent.objects.get(program=web).detail == "stop by job #77"


def test_a_failed_manager_action_still_stores_what_the_program_looks_like(host, supervisord, monkeypatch):
    calls, _ = supervisord
    web = program(host, "web", "supervisord", pids=[10, 20], state="running", present=True)
    manager = job_actions.MANAGERS["supervisord"]

    def refuse(name, action, **options):
        manager.states[name] = "fatal"
        raise job_actions.ProcessError("web:web_00 failed to start")

    monkeypatch.setattr(manager, "act", refuse)
    target = process(host, 10)
    ctx, _ = context(STOP_ACTION, {})
    with pytest.raises(job_actions.ProcessError):
        job_actions._through_manager(ctx, None, target, owners.owning_program(target), "stop", "TERM", 10,
                                     target.start_time, 60)
    assert calls[-1] == ("status", "web")
    assert Program.objects.get(pk=web.pk).state == "fatal"


def test_one_instance_of_a_pm2_app_with_several_is_signaled_directly(host, monkeypatch):
    store.store_scan(host.pk, snapshot([proc(30, "node", owner=("pm2", "api"), main=True),
                                        proc(31, "node", owner=("pm2", "api"), main=True)], at=2_000_000_000))
    program(host, "api", "pm2", pids=[30, 31])
    asked = []

    class PM2:
        def __init__(self, shell):
            pass

        def detect(self):
            return ManagerInfo("pm2", True, "5.3.0", supports=frozenset({"stop", "signal", "pause", "resume"}))

        def status(self, name):
            return ProgramStatus(manager="pm2", name=name, state="running", pids=[30, 31],
                                 extra={"instances": [{"pm_id": 0}, {"pm_id": 1}]})

        def act(self, name, action, **options):
            asked.append(action)

    monkeypatch.setitem(job_actions.MANAGERS, "pm2", PM2)
    target = process(host, 30)
    ctx, lines = context(KILL_ACTION, {})
    assert job_actions._through_manager(ctx, None, target, owners.owning_program(target), "kill", "KILL", 30,
                                        target.start_time, 60) is None
    assert not asked
    assert lines == ["signaling directly, not through pm2: pid 30 is one of 2 instances of api, and PM2 would act "
                     "on all of them"]
