"""Programs through the portal against real managers in fleet hosts (API or service → job → live
worker → supervisord, systemd, PM2): refresh, deploy, crash and restart counted, pause/resume,
memory limits, live logs, a manager that is down."""
import time

import pytest

from ops_portal.jobs.choices import JobState
from ops_portal.programs import services
from ops_portal.programs.models import HostManager, Program
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


def refresh(pf, *kinds, state=JobState.SUCCEEDED):
    hosts = [pf.hosts[k] for k in kinds] if kinds else None
    return wait_job(services.launch_refresh(pf.operator, pf.env, hosts), state, timeout=120)


def test_refresh_finds_each_hosts_managers_and_programs(pfleet, live_worker):
    refresh(pfleet)
    managers = {(m.host.name, m.manager): m for m in HostManager.objects.select_related("host")}
    for host in pfleet.hosts.values():
        assert managers[host.name, "supervisord"].available, managers[host.name, "supervisord"].reason
    assert managers[pfleet.hosts["systemd"].name, "systemd"].available
    assert managers[pfleet.hosts["pm2"].name, "pm2"].available
    plain = managers[pfleet.hosts["supervisord"].name, "systemd"]
    assert not plain.available and "not installed" in plain.reason
    assert "not installed" in managers[pfleet.hosts["supervisord"].name, "pm2"].reason
    ticker = Program.objects.get(host=pfleet.hosts["supervisord"], manager="supervisord", name="ticker")
    assert ticker.state == "running" and ticker.pids
    assert Program.objects.filter(host=pfleet.hosts["systemd"], manager="systemd", name="ssh").exists()


def deploy(pf, kind, name, spec):
    program = services.create_program(pf.admin, host=pf.hosts[kind], manager=kind, name=name, spec=spec)
    job = wait_job(services.launch_apply(pf.admin, program), (JobState.SUCCEEDED, JobState.FAILED), timeout=120)
    assert job.state == JobState.SUCCEEDED, (job.error, list(job.targets.values_list("error", flat=True)))
    return Program.objects.get(pk=program.pk)


def remove(pf, program):
    job = services.remove_program(pf.admin, program)
    if job is not None:
        wait_job(job, JobState.SUCCEEDED, timeout=120)


def operate(pf, program, operation, **options):
    job = wait_job(services.launch_operation(pf.operator, program, operation, **options),
                   (JobState.SUCCEEDED, JobState.FAILED), timeout=120)
    assert job.state == JobState.SUCCEEDED, (job.error, list(job.targets.values_list("error", flat=True)))
    return Program.objects.get(pk=program.pk)


def proc_state(pf, kind, pid):
    return pf.exec(kind, ["ps", "-o", "stat=", "-p", str(pid)]).stdout.strip()


@pytest.mark.parametrize("kind", ["supervisord", "systemd", "pm2"])
def test_deploy_pause_resume_kill_and_restart_is_counted(pfleet, live_worker, kind):
    refresh(pfleet, kind)
    spec = {"command": ["/bin/sh", "-c", "echo started; exec sleep 1000"], "autorestart": "true", "startsecs": 1}
    program = deploy(pfleet, kind, pfleet.name("sleepy"), spec)
    try:
        assert program.state == "running" and program.pids and program.applied_spec["command"] == spec["command"]
        pid = program.pids[0]
        program = operate(pfleet, program, "pause")
        assert program.state == "paused"
        assert proc_state(pfleet, kind, pid).startswith("T")
        program = operate(pfleet, program, "resume")
        assert program.state == "running"
        assert not proc_state(pfleet, kind, pid).startswith("T")

        before = program.restarts or 0
        pfleet.exec(kind, ["kill", "-9", str(pid)])
        deadline = time.monotonic() + 30
        while True:
            refresh(pfleet, kind)
            program = Program.objects.get(pk=program.pk)
            if (program.restarts or 0) > before and program.state == "running" or \
                    time.monotonic() > deadline:
                break
        assert program.restarts == before + 1, (program.state, program.restarts, program.exit_reason)
        assert program.pids and program.pids[0] != pid
        kinds = set(program.events.values_list("kind", flat=True))
        assert "restarted" in kinds
    finally:
        remove(pfleet, program)
    assert not Program.objects.filter(pk=program.pk).exists()
