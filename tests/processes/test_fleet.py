"""The process level against real fleet hosts through a live worker (API → job → worker → SSH →
database → API): every host's inventory lists its sshd and its manager (supervisord, systemd,
PM2); pause and resume of a plain process; a reused pid refused; a program's process killed
directly (its programs not refreshed yet) and restarted by supervisord, seen as restarted; and,
once the programs app's refresh knows the host's programs, a program's process killed, paused and
resumed through supervisord itself, the program's state stored by the same job."""
import re
from pathlib import Path

import pytest
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.inventory import services as inventory
from ops_portal.jobs.choices import JobState
from ops_portal.processes.models import Process, ProcessScan
from ops_portal.programs import services as programs
from ops_portal.programs.models import Program
from tests import factories
from tests.jobs.helpers import wait_job
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


def programs_refreshed(fleet_env, host):
    """Run the programs app's own refresh (programs.refresh) on the host, as an operator would."""
    env, user, _ = fleet_env
    job = wait_job(programs.launch_refresh(Actor.for_user(user, source="api"), env, [host]),
                   JobState.SUCCEEDED, timeout=120)
    assert job.targets.get().state == "ok"


def running_pid(fleet, host, name):
    match = re.search(r"RUNNING\s+pid (\d+)", fleet.exec(host.name, ["supervisorctl", "status", name]).stdout)
    return int(match.group(1)) if match else None


def assert_restarted(fleet, operator_api, host, old):
    """supervisord runs sleeper again under a new pid, and the next scan counts it restarted."""
    assert wait_for(lambda: running_pid(fleet, host, "sleeper") not in (None, old), 20), \
        "supervisord did not restart sleeper"
    scan(operator_api, host)
    latest = ProcessScan.objects.filter(host=host).latest("time")
    assert any(name == "sleep" and was == old for was, new, name in latest.changes["restarted"]), latest.changes


def test_a_programs_process_the_portal_does_not_know_is_killed_directly_and_restarted_by_supervisord(
        fleet, fleet_env, operator_api, live_worker):
    host = fleet_env[2][fleet.hosts[1].name]
    wait_for(lambda: running_pid(fleet, host, "sleeper"), 20)
    scan(operator_api, host)
    assert not Program.objects.filter(host=host).exists()  # the host's programs were never refreshed
    (sleeper,) = Process.objects.filter(host=host, owner_kind="supervisord", owner_name="sleeper", main=True)
    job = act(operator_api, sleeper, "kill")
    text = output(job)
    assert "signaling directly, not through a manager: it belongs to supervisord program sleeper, which the " \
           "portal does not know as a program (refresh the host's programs)" in text
    assert f"sent SIGKILL to pid {sleeper.pid}" in text
    assert job.targets.get().data["via"] == "signal"
    assert_restarted(fleet, operator_api, host, sleeper.pid)


def test_a_programs_process_is_killed_through_supervisord_once_its_programs_are_refreshed(
        fleet, fleet_env, operator_api, live_worker):
    host = fleet_env[2][fleet.hosts[1].name]
    wait_for(lambda: running_pid(fleet, host, "sleeper"), 20)
    programs_refreshed(fleet_env, host)
    scan(operator_api, host)
    (sleeper,) = Process.objects.filter(host=host, owner_kind="supervisord", owner_name="sleeper", main=True)
    program = Program.objects.get(host=host, manager="supervisord", name="sleeper")
    assert program.pids == [sleeper.pid]
    job = act(operator_api, sleeper, "kill")
    text = output(job)
    assert f"pid {sleeper.pid} is the process of supervisord program sleeper: asking supervisord to signal " \
           f"sleeper with SIGKILL" in text
    assert "supervisord reports sleeper:" in text and "sent SIGKILL" not in text and "directly" not in text
    result = job.targets.get().data
    assert result["via"] == "supervisord" and result["manager_action"] == "signal" and result["program"] == "sleeper"
    assert wait_for(lambda: not fleet.exec(host.name, ["ps", "-p", str(sleeper.pid)]).ok, 10), \
        f"pid {sleeper.pid} is still there"  # the process got SIGKILL
    assert Program.objects.get(pk=program.pk).updated > program.updated  # stored by the job, not a refresh
    assert_restarted(fleet, operator_api, host, sleeper.pid)


def test_a_programs_process_is_paused_and_resumed_through_supervisord(fleet, fleet_env, operator_api, live_worker):
    host = fleet_env[2][fleet.hosts[2].name]
    wait_for(lambda: running_pid(fleet, host, "ticker"), 20)
    programs_refreshed(fleet_env, host)
    scan(operator_api, host)
    ticker = Process.objects.get(host=host, owner_kind="supervisord", owner_name="ticker", main=True)
    program = Program.objects.get(host=host, manager="supervisord", name="ticker")
    assert program.state == "running"
    paused = act(operator_api, ticker, "pause")
    result = paused.targets.get().data
    assert result["via"] == "supervisord" and result["state"] == "paused", output(paused)
    assert "asking supervisord to pause ticker" in output(paused)
    assert stat(fleet, host, ticker.pid).startswith("T")
    assert Program.objects.get(pk=program.pk).state == "paused"  # the programs app sees it at once
    resumed = act(operator_api, ticker, "resume")
    assert resumed.targets.get().data["state"] == "running", output(resumed)
    assert "asking supervisord to resume ticker" in output(resumed)
    assert stat(fleet, host, ticker.pid)[0] in "SR"
    assert Program.objects.get(pk=program.pk).state == "running"


def test_a_stop_waiting_out_its_grace_runs_on_the_host_tagged_with_its_job(fleet, fleet_env, operator_api, live_worker):
    """What a process action runs on the host carries the job's OPSPORTAL_JOB tag (as host commands
    and program actions do), so what a job left on a host can be told from everything else."""
    from tests.helpers import wait_until
    from tests.processes.conftest import launched

    name = fleet.hosts[0].name
    host = fleet_env[2][name]
    ignores_term = "setsid sh -c 'trap \"\" TERM; exec sleep 4245' </dev/null >/dev/null 2>&1 &"
    fleet.exec(name, ["sh", "-c", ignores_term]).check()
    try:
        pid = int(wait_for(lambda: fleet.exec(name, ["pgrep", "-f", "^sleep 4245$"]).stdout.strip(), timeout=10))
        scan(operator_api, host)
        process = Process.objects.get(host=host, pid=pid)
        job = launched(operator_api.post(reverse("api:process-stop", args=[process.pk]), {"grace_seconds": 15},
                                         format="json"))
        tag = f"OPSPORTAL_JOB={job.pk}"
        wait_until(lambda: fleet.exec(name, ["sh", "-c", f"grep -lsa '{tag}' /proc/[0-9]*/environ"]).exit_code == 0,
                   timeout=60, what="the job's command on the host, tagged")
        done = wait_job(job, JobState.SUCCEEDED, timeout=120)
        assert done.targets.get().data["ended"] is True, output(done)
        assert not fleet.exec(name, ["pgrep", "-f", "^sleep 4245$"]).stdout.strip()  # killed after the grace
    finally:
        fleet.exec(name, ["pkill", "-9", "-f", "^sleep 4245$"])
