"""The process level against real fleet hosts through a live worker (API → job → worker → SSH →
database → API): every host's inventory lists its sshd and its manager (supervisord, systemd,
PM2); pause and resume of a plain process; a reused pid refused; a program's process killed
directly and restarted by supervisord, seen as restarted; and, with the programs app standing in,
a program's process paused and resumed through supervisord itself."""
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.inventory import services as inventory
from ops_portal.processes import job_actions, owners
from ops_portal.processes.choices import PAUSE_ACTION, RESUME_ACTION
from ops_portal.processes.models import Process, ProcessScan
from schedulers.base import CancelToken
from schedulers.host import SSHPool
from tests import factories
from tests.processes.conftest import act, found, output, scan
from tests.schedulers.process_helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


@pytest.fixture
def fleet_env(fleet, fleet_kinds, db):
    """The fleet's supervisord hosts and its systemd and PM2 hosts in one environment, registered by an
    administrator as an operator would, each pinned to its real host key."""
    env = factories.environment("fleet")
    user = factories.user()
    factories.binding(role=Role.ADMIN, user=user, environment=env)
    actor = Actor.for_user(user, source="api")
    hosts = {}
    for number, run in enumerate((fleet, fleet_kinds)):
        credential = inventory.create_credential(actor, name=f"fleet-key-{number}", environment=env,
                                                 username="root", private_key=Path(run.key_path).read_text())
        for h in run.hosts:
            hosts[h.name] = inventory.create_host(actor, name=h.name, address=h.address, port=h.port,
                                                  username=h.user, environment=env, credential=credential,
                                                  host_key=h.host_key)
    return env, user, hosts


@pytest.fixture
def operator_api(api, fleet_env):
    env = fleet_env[0]
    user = factories.user()
    factories.binding(role=Role.OPERATOR, user=user, environment=env)
    api.force_authenticate(user)
    return api


def test_the_inventory_of_every_fleet_host_lists_its_sshd_and_its_manager(fleet_env, operator_api, systemd_host,
                                                                         pm2_host, live_worker):
    env, _, hosts = fleet_env
    job = scan(operator_api, *hosts.values(), timeout=180)
    assert job.targets.filter(state="ok").count() == len(hosts)
    for name, host in hosts.items():
        sshd = found(operator_api, host, name="sshd")
        assert sshd, f"no sshd on {name}"
        assert any({"address": "0.0.0.0", "port": 22} in p["ports"] or {"address": "::", "port": 22} in p["ports"]
                   for p in sshd), f"sshd of {name} listens on no port 22: {sshd}"
        if name == systemd_host.name:
            (init,) = found(operator_api, host, pid=1)
            assert init["name"] == "systemd"
            assert any(p["owner_kind"] == "systemd" and p["owner_name"] == "ssh.service" for p in sshd)
        elif name == pm2_host.name:
            god = found(operator_api, host, q="God Daemon")
            assert god and god[0]["command"].startswith("PM2 v7")
        else:
            assert found(operator_api, host, name="supervisord")
            programs = {p["owner_name"] for p in found(operator_api, host, owner_kind="supervisord")}
            assert {"sleeper", "ticker"} <= programs
        assert ProcessScan.objects.get(host=host).source in ("psutil", "proc")


@pytest.fixture
def plain(fleet, fleet_env):
    """A plain process (no manager owns it) on the first fleet host: (host, pid)."""
    name = fleet.hosts[0].name
    fleet.exec(name, ["sh", "-c", "setsid sleep 4243 </dev/null >/dev/null 2>&1 &"]).check()
    pid = wait_for(lambda: fleet.exec(name, ["pgrep", "-f", "^sleep 4243$"]).stdout.strip(), timeout=10)
    assert pid, "the plain process did not start"
    yield fleet_env[2][name], int(pid)
    fleet.exec(name, ["pkill", "-f", "^sleep 4243$"])


def stat(fleet, host, pid):
    return fleet.exec(host.name, ["ps", "-o", "stat=", "-p", str(pid)]).stdout.strip()


def test_pause_gives_state_t_and_resume_clears_it_on_a_fleet_host(fleet, plain, operator_api, live_worker):
    host, pid = plain
    scan(operator_api, host)
    process = Process.objects.get(host=host, pid=pid)
    assert process.owner_kind == "" and process.name == "sleep"
    act(operator_api, process, "pause")
    assert stat(fleet, host, pid).startswith("T")
    scan(operator_api, host)
    assert found(operator_api, host, pid=pid)[0]["state"] == "T"
    act(operator_api, process, "resume")
    assert stat(fleet, host, pid)[0] in "SR"
    scan(operator_api, host)
    assert found(operator_api, host, pid=pid)[0]["state"] == "S"


def test_signal_of_a_pid_whose_start_time_changed_is_refused(fleet, plain, operator_api, live_worker):
    host, pid = plain
    scan(operator_api, host)
    process = Process.objects.get(host=host, pid=pid)
    Process.objects.filter(pk=process.pk).update(start_time=process.start_time + 7200)
    job = act(operator_api, process, "signal", {"signal": "KILL"}, state="failed")
    assert "is now another process" in job.targets.get().error
    assert stat(fleet, host, pid).startswith("S")  # never signaled


def test_a_programs_process_killed_directly_is_restarted_by_supervisord_and_seen_restarted(fleet, fleet_env,
                                                                                           operator_api,
                                                                                           live_worker):
    host = fleet_env[2][fleet.hosts[1].name]
    wait_for(lambda: "RUNNING" in fleet.exec(host.name, ["supervisorctl", "status", "sleeper"]).stdout, 20)
    scan(operator_api, host)
    (sleeper,) = Process.objects.filter(host=host, owner_kind="supervisord", owner_name="sleeper", main=True)
    job = act(operator_api, sleeper, "kill")
    text = output(job)
    assert "signaling directly, not through a manager: it belongs to supervisord program sleeper, but the " \
           "programs app is not installed" in text
    assert f"sent SIGKILL to pid {sleeper.pid}" in text

    def restarted():
        out = fleet.exec(host.name, ["supervisorctl", "status", "sleeper"]).stdout
        match = re.search(r"RUNNING\s+pid (\d+)", out)
        return match and int(match.group(1)) != sleeper.pid

    assert wait_for(restarted, 20), "supervisord did not restart sleeper"
    scan(operator_api, host)
    latest = ProcessScan.objects.filter(host=host).latest("time")
    assert any(name == "sleep" and old == sleeper.pid for old, new, name in latest.changes["restarted"]), \
        latest.changes


@pytest.fixture
def programs_app(monkeypatch):
    """The programs app standing in (it is built on another branch): it knows every supervisord program."""
    module = types.ModuleType(owners.PROGRAMS_SERVICES)
    module.program_for_process = lambda host, pid, kind, name: SimpleNamespace(pk=1, manager=kind, name=name)
    monkeypatch.setitem(sys.modules, owners.PROGRAMS_SERVICES, module)
    monkeypatch.setattr(owners, "programs_installed", lambda: True)


class Context:
    """What the runner hands an action for one target, with writes done at once."""

    def __init__(self, process, action, pool):
        self.obj, self.params, self.timeout, self.cancel = process, {"use_manager": True}, 60, CancelToken()
        self.job = SimpleNamespace(pk=0, action=action)
        self.target = SimpleNamespace(name=str(process), index=0,
                                      fingerprint={"pid": process.pid, "start_time": process.start_time})
        self.resources = {"ssh": pool, "owners": {process.pk: owners.owning_program(process)}}
        self.lines = []

    def output(self, stream, text):
        self.lines.append(text)

    def after(self, func):
        func()


def test_a_programs_process_is_paused_and_resumed_through_supervisord(fleet, fleet_env, operator_api, programs_app,
                                                                      live_worker):
    host = fleet_env[2][fleet.hosts[2].name]
    wait_for(lambda: "RUNNING" in fleet.exec(host.name, ["supervisorctl", "status", "ticker"]).stdout, 20)
    scan(operator_api, host)
    ticker = Process.objects.select_related("host__credential").get(
        host=host, owner_kind="supervisord", owner_name="ticker", main=True)
    with SSHPool(2) as pool:
        paused = Context(ticker, PAUSE_ACTION, pool)
        result = job_actions.act_on_process(paused)
        assert result.data["via"] == "supervisord" and result.data["state"] == "paused", paused.lines
        assert any("asking supervisord to pause ticker" in line for line in paused.lines)
        assert stat(fleet, host, ticker.pid).startswith("T")
        resumed = Context(ticker, RESUME_ACTION, pool)
        assert job_actions.act_on_process(resumed).data["state"] == "running", resumed.lines
        assert stat(fleet, host, ticker.pid)[0] in "SR"
