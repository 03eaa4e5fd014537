"""Programs through the portal against real managers in fleet hosts (API or service → job → live
worker → supervisord, systemd, PM2): refresh, deploy, crash and restart counted, pause/resume,
memory limits, live logs, a manager that is down."""
import json
import time

import pytest

from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import Job
from ops_portal.programs import services
from ops_portal.programs.models import HostManager, Program
from tests.helpers import wait_until
from tests.jobs.helpers import wait_job
from tests.programs.helpers import refresh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


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


def wait_refreshed(pf, kind, program, check, timeout=45, alert_after=None):
    """Refresh the host until check(program) holds; return the program."""
    deadline = time.monotonic() + timeout
    while True:
        if alert_after is None:
            refresh(pf, kind)
        else:
            wait_job(launch_refresh_with(pf, kind, alert_after), JobState.SUCCEEDED, timeout=120)
        program = Program.objects.get(pk=program.pk)
        if check(program) or time.monotonic() > deadline:
            return program
        time.sleep(1)


def launch_refresh_with(pf, kind, alert_after):
    from ops_portal.jobs.launch import launch_adhoc

    return launch_adhoc(pf.operator, environment=pf.env, action="programs.refresh",
                        values={"alert_after": alert_after}, selector={"names": [pf.hosts[kind].name]},
                        predefined=True)


HOG = ["/usr/bin/python3", "-c",
       "import time; x=[]; [(x.append(b'x' * (4 << 20)), time.sleep(0.2)) for _ in iter(int, 1)]"]


@pytest.mark.parametrize("kind", ["supervisord", "systemd", "pm2"])
def test_a_memory_hog_is_stopped_by_its_limit_and_the_portal_says_why(pfleet, live_worker, kind):
    refresh(pfleet, kind)
    spec = {"command": HOG, "memory_max": 48 * 2**20, "autorestart": "false", "startsecs": 0}
    program = deploy(pfleet, kind, pfleet.name("hog"), spec)
    try:
        assert program.limits["memory_max"]["value"] in (48 * 2**20, "49152K")
        assert program.limits["memory_max"]["enforced_by"]
        program = wait_refreshed(pfleet, kind, program, lambda p: "memory limit" in p.exit_reason)
        assert "memory limit" in program.exit_reason, (program.state, program.exit_reason, program.details)
        assert program.events.filter(kind="oom").exists(), list(program.events.values_list("kind", "detail"))
    finally:
        remove(pfleet, program)


TICKER = ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 0.5; done"]


@pytest.mark.parametrize("kind", ["supervisord", "systemd", "pm2"])
def test_lines_a_program_writes_appear_in_the_live_tail(pfleet, live_worker, kind):
    from ops_portal.jobs.models import JobEvent

    refresh(pfleet, kind)
    program = deploy(pfleet, kind, pfleet.name("tick"), {"command": TICKER, "startsecs": 1})
    try:
        job = services.launch_logs(pfleet.operator, program, mode="follow", duration=20)
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            lines = list(JobEvent.objects.filter(job=job, kind="output").values_list("text", flat=True))
            if len(lines) >= 3:
                break
            time.sleep(0.5)
        assert len(lines) >= 3 and all(line.startswith("line-") for line in lines[-3:]), lines
        numbers = [int(line.split("-")[1]) for line in lines if line.startswith("line-")]
        assert numbers == sorted(numbers)
        assert Job.objects.get(pk=job.pk).state == JobState.RUNNING  # still following, live
        from ops_portal.jobs.launch import request_cancel

        request_cancel(pfleet.operator, job)
        wait_job(job, JobState.CANCELED, timeout=60)
        tail = wait_job(services.launch_logs(pfleet.operator, program, mode="tail", lines=5), JobState.SUCCEEDED,
                        timeout=120)
        assert [e for e in JobEvent.objects.filter(job=tail, kind="output").values_list("text", flat=True)
                if e.startswith("line-")]
    finally:
        remove(pfleet, program)


CRASHER = ["/bin/sh", "-c", "sleep 2; echo boom-on-stderr >&2; exit 3"]


@pytest.mark.parametrize("kind", ["supervisord", "systemd"])
def test_a_crash_loop_is_shown_with_stderr_alerted_and_resolved_once_fixed(pfleet, live_worker, kind):
    from ops_portal.monitoring.choices import AlertState
    from ops_portal.monitoring.models import Alert
    from ops_portal.programs.choices import ALERT_SOURCE

    refresh(pfleet, kind)
    program = deploy(pfleet, kind, pfleet.name("crash"), {"command": CRASHER, "autorestart": "true",
                                                          "startsecs": 1, "startretries": 3})
    try:
        program = wait_refreshed(pfleet, kind, program, lambda p: p.crash_loop and p.alerted and (p.restarts or 0) >= 2,
                                 timeout=90, alert_after=0)
        assert program.crash_loop and program.restarts, (program.state, program.restarts, program.exit_reason)
        assert program.alerted
        alerts = Alert.objects.filter(source=ALERT_SOURCE, key=f"program:{program.pk}")
        alert = alerts.get(state=AlertState.FIRING)
        assert alert.host_id == pfleet.hosts[kind].pk
        if kind == "supervisord":
            assert any("boom-on-stderr" in line for line in program.stderr_tail)
        else:
            tail = wait_job(services.launch_logs(pfleet.operator, program, mode="tail", stream="stderr", lines=20),
                            JobState.SUCCEEDED, timeout=120)
            assert tail.targets.get().data["errors"] >= 0
        assert program.events.filter(kind__in=["crashed", "restarted"]).exists()

        services.update_program(pfleet.admin, program, spec={"command": ["/bin/sleep", "1000"], "startsecs": 1,
                                                             "autorestart": "true"})
        wait_job(services.launch_apply(pfleet.admin, Program.objects.get(pk=program.pk)), JobState.SUCCEEDED,
                 timeout=120)
        program = wait_refreshed(pfleet, kind, program, lambda p: not p.crash_loop and p.state == "running",
                                 alert_after=0)
        assert program.state == "running" and not program.crash_loop and not program.alerted
        assert set(alerts.values_list("state", flat=True)) == {AlertState.RESOLVED}
    finally:
        remove(pfleet, Program.objects.get(pk=program.pk))


def test_an_unknown_unit_fails_its_target_in_plain_words(pfleet, live_worker):
    refresh(pfleet, "systemd")
    ghost = Program.objects.create(host=pfleet.hosts["systemd"], manager="systemd", name=pfleet.name("ghost"),
                                   state="stopped", present=True)
    job = wait_job(services.launch_operation(pfleet.operator, ghost, "start"), JobState.FAILED, timeout=120)
    error = job.targets.get().error
    assert f"no unit {ghost.name}.service on {pfleet.hosts['systemd'].name}" in error, error


def test_an_injected_spec_in_a_raw_job_is_refused_before_anything_runs(pfleet, live_worker):
    from ops_portal.jobs.launch import launch_adhoc

    refresh(pfleet, "supervisord")
    name = pfleet.name("inject")
    target = Program.objects.create(host=pfleet.hosts["supervisord"], manager="supervisord", name=name,
                                    managed=True, spec={"command": ["/bin/true"]}, state="absent")
    evil = {"command": ["/bin/sleep", "1\n[program:owned]\ncommand=/bin/sh -c 'id > /tmp/owned'"]}
    job = launch_adhoc(pfleet.admin, environment=pfleet.env, action="program.apply",
                       values={"spec": json.dumps(evil)}, selector={"kind": "program", "ids": [str(target.pk)]})
    job = wait_job(job, JobState.FAILED, timeout=120)
    assert "refused before anything ran" in job.targets.get().error
    listing = pfleet.exec("supervisord", ["ls", "/etc/supervisor/conf.d"]).stdout
    assert name not in listing and "owned" not in listing
    assert pfleet.exec("supervisord", ["test", "-e", "/tmp/owned"]).exit_code != 0


def test_a_manager_that_is_down_and_a_host_without_any_manager_say_so(pfleet, live_worker, client):
    from django.urls import reverse

    from ops_portal.accounts.choices import Role
    from tests.programs.helpers import person

    kind = "supervisord"
    refresh(pfleet, kind)
    host = pfleet.hosts[kind]
    pfleet.exec(kind, ["supervisorctl", "shutdown"]).check()
    try:
        def stopped():  # supervisord says "shutting down" for a moment first
            refresh(pfleet, kind)
            manager = HostManager.objects.get(host=host, manager="supervisord")
            return manager if "not running" in manager.reason else None

        manager = wait_until(stopped, 60, "supervisord seen not running")
        assert not manager.available and "not running" in manager.reason, manager.reason
        ticker = Program.objects.get(host=host, manager="supervisord", name="ticker")
        assert ticker.state == "unknown" and "not running" in ticker.details["not_listed"]
        response = services.refusal(ticker, "restart")
        assert "not running" in response

        # Without its configuration the host has no manager at all: the page offers to install one.
        pfleet.exec(kind, ["mv", "/etc/supervisor/supervisord.conf", "/etc/supervisor/supervisord.conf.away"]).check()
        refresh(pfleet, kind)
        assert not HostManager.objects.filter(host=host, available=True).exists()
        assert "not installed" in HostManager.objects.get(host=host, manager="supervisord").reason
        client.force_login(person(pfleet.env, Role.ADMIN))
        page = client.get(reverse("inventory:host", args=[host.pk])).content.decode()
        assert "No process manager on this host" in page and reverse("programs:install", args=[host.pk]) in page
    finally:
        pfleet.exec(kind, ["sh", "-c", "test -e /etc/supervisor/supervisord.conf.away && mv "
                                       "/etc/supervisor/supervisord.conf.away /etc/supervisor/supervisord.conf; "
                                       "supervisord -c /etc/supervisor/supervisord.conf"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and pfleet.exec(kind, ["test", "-S", "/run/supervisor.sock"]).exit_code:
            time.sleep(0.3)


def test_a_follow_left_by_a_dead_worker_is_ended_on_its_host(pfleet, live_env, live_logs):
    """SIGKILL the worker while it follows a program's log: the job turns lost, and the next worker of
    its queue ends the follower it left on the host (found by the job's OPSPORTAL_JOB tag)."""
    import os
    import signal
    import uuid

    from ops_portal.jobs.models import JobEvent
    from ops_portal.jobs.tasks import reap_lost_jobs
    from ops_portal.jobs.templates import create_template
    from tests.live import start_worker

    kind = "supervisord"
    queue = f"q{uuid.uuid4().hex[:8]}"
    doomed = start_worker(live_env, live_logs, name=f"doomed-{queue}", concurrency=1, queues=queue)
    heir = None
    try:
        from ops_portal.jobs.launch import launch

        # The refresh that finds "ticker" runs on the doomed worker's queue too.
        template = create_template(pfleet.admin, name=f"refresh-{queue}", environment=pfleet.env,
                                   action="programs.refresh", selector={"names": [pfleet.hosts[kind].name]},
                                   queue=queue)
        wait_job(launch(pfleet.operator, template), JobState.SUCCEEDED, timeout=120)
        ticker = Program.objects.get(host=pfleet.hosts[kind], manager=kind, name="ticker")
        follow = create_template(pfleet.admin, name=f"follow-{queue}", environment=pfleet.env, action="program.logs",
                                 selector={"kind": "program", "ids": [str(ticker.pk)]},
                                 action_params={"mode": "follow", "duration": 600}, queue=queue)
        job = launch(pfleet.operator, follow)
        tag = f"OPSPORTAL_JOB={job.pk}"
        tagged = ["sh", "-c", f"grep -lsa '{tag}' /proc/[0-9]*/environ"]
        wait_until(lambda: JobEvent.objects.filter(job=job, kind="output").exists(), timeout=60, what="output")
        wait_until(lambda: (job.targets.get().data or {}).get("session"), what="the session id")
        os.killpg(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait()
        assert pfleet.exec(kind, tagged).exit_code == 0  # the follower runs on, unattended
        wait_until(lambda: reap_lost_jobs() or Job.objects.get(pk=job.pk).state == JobState.LOST, timeout=40,
                   what="the reaper to mark the job lost")
        heir = start_worker(live_env, live_logs, name=f"heir-{queue}", concurrency=1, queues=queue)
        wait_until(lambda: pfleet.exec(kind, tagged).exit_code != 0, timeout=60, what="the follower to be ended")
        target = wait_until(lambda: job.targets.filter(error__contains="was ended").first(), timeout=30,
                            what="the target to record it")
    finally:
        doomed.stop()
        if heir is not None:
            heir.stop()
    assert target.data["session_ended"] is True


@pytest.mark.parametrize("kind", ["supervisord", "pm2"])
def test_scaling_a_program_runs_more_processes_and_its_spec_follows(pfleet, live_worker, kind):
    refresh(pfleet, kind)
    program = deploy(pfleet, kind, pfleet.name("pool"), {"command": ["/bin/sleep", "1000"], "startsecs": 1})
    try:
        program = operate(pfleet, program, "scale", count=2)
        assert len(program.pids) == 2, (program.state, program.pids, program.raw_state)
        assert len(set(program.pids)) == 2
        if kind == "supervisord":
            assert program.spec["numprocs"] == 2 and program.applied_spec["numprocs"] == 2
        refresh(pfleet, kind)
        program = Program.objects.get(pk=program.pk)
        assert len(program.pids) == 2 and program.state == "running"
    finally:
        remove(pfleet, Program.objects.get(pk=program.pk))


@pytest.mark.parametrize("kind", ["supervisord", "systemd", "pm2"])
def test_a_program_stopped_on_its_host_fires_its_state_rule_and_resolves_once_started(pfleet, live_worker, kind):
    """A "program not running" rule against a real manager: the stop job stores the state the
    manager reports, the evaluation raises an alert about that program, and resolves it after start."""
    from ops_portal.core.context import Actor
    from ops_portal.monitoring import services as monitoring
    from ops_portal.monitoring.evaluation import evaluate
    from ops_portal.monitoring.models import Alert

    refresh(pfleet, kind)
    program = deploy(pfleet, kind, pfleet.name("watched"), {"command": ["/bin/sleep", "1000"], "startsecs": 1})
    try:
        rule = monitoring.create_rule(Actor.system(), environment=pfleet.env, name=f"{kind}-down",
                                      kind="program_not_running", name_filter=program.name, severity="critical")
        assert evaluate(environment_id=pfleet.env.pk) == {"fired": 0, "resolved": 0}
        program = operate(pfleet, program, "stop")
        assert program.state == "stopped", (program.state, program.exit_reason)
        assert evaluate(environment_id=pfleet.env.pk) == {"fired": 1, "resolved": 0}
        alert = Alert.objects.get(rule=rule)
        assert (alert.state, alert.subject_kind, alert.subject_id, alert.subject_name, alert.host_id) == (
            "firing", "program", program.pk, program.name, pfleet.hosts[kind].pk)
        assert evaluate(environment_id=pfleet.env.pk) == {"fired": 0, "resolved": 0}  # once per program
        program = operate(pfleet, program, "start")
        assert program.state == "running"
        assert evaluate(environment_id=pfleet.env.pk) == {"fired": 0, "resolved": 1}
        alert.refresh_from_db()
        assert (alert.state, alert.resolution) == ("resolved", "the program is running again")
    finally:
        remove(pfleet, program)


def test_a_program_metric_rule_fires_from_a_real_process_scan_on_the_programs_own_memory(pfleet, live_worker):
    """A process scan of a fleet host (SSH, the collector) writes each running program's summed
    figures; its job then asks the worker for an evaluation, which opens the alert about the program
    the rule names, at the memory the portal's own process inventory shows for that program."""
    from ops_portal.monitoring import services as monitoring
    from ops_portal.monitoring.models import Alert
    from ops_portal.processes import services as processes
    from ops_portal.processes.models import Process

    refresh(pfleet, "supervisord")
    host = pfleet.hosts["supervisord"]
    ticker = Program.objects.get(host=host, manager="supervisord", name="ticker")
    rule = monitoring.create_rule(pfleet.admin, environment=pfleet.env, name="ticker-memory", kind="program_metric",
                                  metric="prog_mem_bytes", threshold=1, name_filter="ticker")
    wait_job(processes.launch_scan(pfleet.operator, pfleet.env, [host]), JobState.SUCCEEDED, timeout=120)
    alert = wait_until(lambda: Alert.objects.filter(rule=rule, state="firing").first(), timeout=60,
                       what="the program's alert")
    assert (alert.subject_kind, alert.subject_id, alert.host_id) == ("program", ticker.pk, host.pk)
    owned = list(Process.objects.filter(host=host, owner_kind="supervisord", owner_name="ticker")
                 .values_list("rss", flat=True))
    assert owned and alert.value == float(sum(owned)) > 1
    assert Alert.objects.filter(rule=rule).count() == 1  # sleeper is out of the name filter
