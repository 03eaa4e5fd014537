"""Host-level jobs against the real fleet: facts, batches with a host stopped mid-run, rolling
thresholds, deploy and rollback, host-key pinning, and refused injections."""
import io
import tarfile
import time

import pytest

from ops_portal.audit.models import AuditEvent
from ops_portal.inventory import services as inventory
from ops_portal.inventory.models import FactsChange, Host
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch as launch_template
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import JobEvent
from ops_portal.jobs.templates import create_template
from tests.helpers import wait_until
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


def launch(actor, env, action, values, selector=None, **kwargs):
    return launch_adhoc(actor, environment=env, action=action, values=values,
                             selector=selector or {"tags": ["fleet"]}, **kwargs)


def test_facts_are_gathered_from_every_host_in_parallel(fleet_env, live_worker):
    env, actor, hosts = fleet_env
    job = wait_job(launch(actor, env, "host.facts", {}, strategy={"kind": "parallel", "limit": 10}),
                   JobState.SUCCEEDED, timeout=120)
    assert job.targets_done == len(hosts) and job.targets_failed == 0
    names = set()
    for host in Host.objects.filter(environment=env):
        facts = host.facts
        assert facts["os"]["id"] == "debian" and facts["kernel"] and facts["cpu_count"] >= 1
        assert any(d["mount"] == "/mnt/data" for d in facts["disks"])
        assert 22 in [p["port"] for p in facts["listening_tcp"]]
        assert facts["pending_reboot"] is False and facts["memory"]["total"] > 0
        assert host.reachability == "reachable" and host.last_seen is not None
        names.add(facts["hostname"])
    assert len(names) == len(hosts)  # each host its own hostname
    # A second gathering after a change records what changed.
    first = hosts[0]
    Host.objects.filter(pk=first.pk).update(facts={**Host.objects.get(pk=first.pk).facts, "kernel": "0.0-old"})
    wait_job(launch(actor, env, "host.facts", {}, selector={"names": [first.name]}), JobState.SUCCEEDED)
    change = FactsChange.objects.get(host=first)
    assert change.changes["kernel"]["before"] == "0.0-old"


def test_a_host_stopped_mid_run_fails_alone(fleet, fleet_env, live_worker):
    env, actor, hosts = fleet_env
    victim = hosts[-1]
    job = launch(actor, env, "host.command", {"command": "echo begin; sleep 4; echo end"},
                 strategy={"kind": "parallel", "limit": 20})
    wait_until(lambda: JobEvent.objects.filter(job=job, text="begin").count() == len(hosts), timeout=60,
               what="every host to begin")
    fleet.stop_host(victim.name)
    try:
        job = wait_job(job, JobState.FAILED, timeout=90)
    finally:
        fleet.start_host(victim.name)
    states = dict(job.targets.values_list("name", "state"))
    assert states.pop(victim.name) == TargetState.FAILED
    assert set(states.values()) == {TargetState.OK}
    assert JobEvent.objects.filter(job=job, text="end").count() == len(hosts) - 1
    # In plain words, and the host is known to be down (not exit -1, no error, still "reachable").
    failed = job.targets.get(name=victim.name)
    assert failed.exit_code is None
    assert f"connection to {victim.name} lost during the command" in failed.error
    victim_row = Host.objects.get(pk=victim.pk)
    assert victim_row.reachability == "unreachable" and "lost during the command" in victim_row.last_error


def test_a_rolling_command_stops_when_failures_pass_the_threshold(fleet, fleet_env, live_worker):
    env, actor, hosts = fleet_env
    down = hosts[1]
    fleet.stop_host(down.name)
    try:
        job = wait_job(launch(actor, env, "host.command", {"command": "hostname"},
                              strategy={"kind": "rolling", "batch_size": 2, "max_failures": 0}),
                       JobState.FAILED, timeout=120)
    finally:
        fleet.start_host(down.name)
    target = job.targets.get(name=down.name)
    assert target.state == TargetState.FAILED and "127.0.0.1" in target.error
    assert Host.objects.get(pk=down.pk).reachability == "unreachable"
    by_batch = {}
    for batch, state in job.targets.values_list("batch", "state"):
        by_batch.setdefault(batch, set()).add(state)
    assert by_batch[0] >= {TargetState.OK, TargetState.FAILED}
    assert all(states == {TargetState.SKIPPED} for batch, states in by_batch.items() if batch > 0)


def _release(version):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in {"VERSION": version, "app.sh": "#!/bin/sh\necho running $1\n"}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content.encode()))
    return buffer.getvalue()


def test_deploy_then_roll_back_switches_the_current_symlink(fleet, fleet_env, live_worker):
    env, actor, hosts = fleet_env
    targets = {"names": [h.name for h in hosts[:3]]}
    v1 = inventory.create_artifact(actor, name="app-v1", environment=env, data=_release("1.0"))
    v2 = inventory.create_artifact(actor, name="app-v2", environment=env, data=_release("2.0"))
    hook = 'echo "restarting $RELEASE_ID from $PREVIOUS_RELEASE"; cat VERSION'
    for artifact, release in ((v1, "r1"), (v2, "r2")):
        job = wait_job(launch(actor, env, "host.deploy", {"artifact": artifact.pk, "base_dir": "/srv/app",
                                                          "release_id": release, "restart_hook": hook},
                              selector=targets), JobState.SUCCEEDED, timeout=120)
    assert set(job.targets.values_list("changed", flat=True)) == {True}
    assert JobEvent.objects.filter(job=job, text="restarting r2 from r1").count() == 3
    for host in hosts[:3]:
        assert fleet.exec(host.name, "readlink /srv/app/current").stdout.strip().endswith("releases/r2")
    wait_job(launch(actor, env, "host.rollback", {"base_dir": "/srv/app"}, selector=targets), JobState.SUCCEEDED)
    for host in hosts[:3]:
        assert fleet.exec(host.name, "readlink /srv/app/current").stdout.strip().endswith("releases/r1")
        assert fleet.exec(host.name, "cat /srv/app/current/VERSION").stdout == "1.0"


def test_a_changed_host_key_is_refused_until_an_admin_accepts_it(fleet_env, live_worker, api):
    env, actor, hosts = fleet_env
    victim, other = hosts[-1], hosts[0]
    Host.objects.filter(pk=victim.pk).update(host_key=other.host_key)  # as if the host were replaced
    job = wait_job(launch(actor, env, "host.command", {"command": "true"}, selector={"names": [victim.name]}),
                   JobState.FAILED)
    target = job.targets.get()
    assert "host key for" in target.error and "changed" in target.error and "admin must accept" in target.error
    victim.refresh_from_db()
    assert victim.reachability == "host_key_changed" and victim.offered_host_key.startswith("ssh-ed25519 ")
    api.force_authenticate(actor.user)
    accepted = api.post(f"/api/hosts/{victim.pk}/accept-host-key/")
    assert accepted.status_code == 200 and accepted.json()["host_key"] == victim.offered_host_key
    assert AuditEvent.objects.filter(action="host.accept_host_key", object_id=str(victim.pk)).exists()
    wait_job(launch(actor, env, "host.command", {"command": "true"}, selector={"names": [victim.name]}),
             JobState.SUCCEEDED)


def test_a_new_host_is_trusted_on_first_use_and_pinned(fleet_env, live_worker):
    env, actor, hosts = fleet_env
    host = hosts[-1]
    real_key = host.host_key
    Host.objects.filter(pk=host.pk).update(host_key="")
    wait_job(launch(actor, env, "host.command", {"command": "true"}, selector={"names": [host.name]}),
             JobState.SUCCEEDED)
    assert wait_until(lambda: Host.objects.get(pk=host.pk).host_key, what="the key to be pinned") == real_key


def test_wrong_credentials_fail_with_the_ssh_error_in_plain_words(fleet_env, live_worker):
    from tests.keys import new_private_key

    env, actor, hosts = fleet_env
    other = inventory.create_credential(actor, name="wrong-key", environment=env, private_key=new_private_key())
    Host.objects.filter(pk=hosts[-1].pk).update(credential=other)
    job = wait_job(launch(actor, env, "host.command", {"command": "true"}, selector={"names": [hosts[-1].name]}),
                   JobState.FAILED)
    assert "authentication failed for root@" in job.targets.get().error


def test_injection_attempts_are_refused_before_anything_runs(fleet, fleet_env, api):
    env, actor, hosts = fleet_env
    api.force_authenticate(actor.user)
    fleet.exec(hosts[0].name, "touch /tmp/canary")
    for name in ("web; rm -rf /", "$(reboot)", "`id`"):
        response = api.post("/api/hosts/", {"name": name, "address": "127.0.0.1", "environment": env.name},
                            format="json")
        assert response.status_code == 400 and "name" in response.json()["error"]["fields"]
    for base_dir in ("/srv/app; rm -rf /", "/srv/$(id)", "relative/dir", "/srv/../etc"):
        response = api.post("/api/jobs/", {"environment": env.name, "action": "host.rollback",
                                           "params": {"base_dir": base_dir}, "selector": {"tags": ["fleet"]}},
                            format="json")
        assert response.status_code == 400, base_dir
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../etc/cron.d/evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(Exception, match="archive"):
        inventory.create_artifact(actor, name="evil", environment=env, data=bad.getvalue())
    time.sleep(0.1)
    assert fleet.exec(hosts[0].name, "test -f /tmp/canary").exit_code == 0


def test_compliance_checks_report_evidence_per_host(fleet, fleet_env, live_worker):
    env, actor, hosts = fleet_env
    host = hosts[-1]
    fleet.exec(host.name, "touch /etc/opsportal-ww && chmod 666 /etc/opsportal-ww")
    try:
        job = wait_job(launch(actor, env, "host.compliance", {}, selector={"names": [host.name, hosts[0].name]}),
                       {JobState.FAILED, JobState.SUCCEEDED}, timeout=120)
    finally:
        fleet.exec(host.name, "rm -f /etc/opsportal-ww")
    results = {(r.host.name, r.name): r for r in host.compliance_results.select_related("host")}
    ww = [r for (h, name), r in results.items() if "world" in name]
    assert ww and ww[0].passed is False and "/etc/opsportal-ww" in ww[0].evidence
    root_login = [r for (h, name), r in results.items() if "root" in name.lower()]
    assert root_login and root_login[0].passed is True
    assert job.targets.get(name=host.name).state == TargetState.FAILED  # a failed check fails the target


def test_a_dead_workers_remote_command_is_ended_and_its_output_kept(fleet, fleet_env, live_env, live_logs):
    """SIGKILL the worker mid-command: the job turns lost, the remote session is ended by the next
    worker of the job's queue, and the output stored before the death stays."""
    import os
    import signal
    import uuid

    from ops_portal.jobs.tasks import reap_lost_jobs
    from tests.live import start_worker

    env, actor, hosts = fleet_env
    host = hosts[0]
    marker = f"opsportal-lost-{uuid.uuid4().hex[:8]}"
    # Output, then a quiet stretch (a command that keeps printing would die of SIGPIPE once the
    # dead worker's connection is gone; a quiet one runs on unattended).
    command = f"echo begun; for i in 0 1 2 3 4 5 6 7 8 9; do echo tick $i; sleep 0.1; done; sleep 300 # {marker}"
    queue = f"q{uuid.uuid4().hex[:8]}"
    template = create_template(actor, name=f"long-{queue}", environment=env, action="host.command",
                                    selector={"names": [host.name]}, action_params={"command": command}, queue=queue)
    doomed = start_worker(live_env, live_logs, name=f"doomed-{queue}", concurrency=1, queues=queue)
    heir = None
    try:
        job = launch_template(actor, template)
        wait_until(lambda: JobEvent.objects.filter(job=job, text="tick 9").exists(), timeout=60, what="output")
        session = wait_until(lambda: (job.targets.get().data or {}).get("session"), what="the session id")
        os.killpg(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait()
        stored_at_death = list(JobEvent.objects.filter(job=job, kind="output").order_by("seq")
                               .values_list("text", flat=True))
        assert fleet.exec(host.name, ["pgrep", "-f", marker]).exit_code == 0  # still running, unattended
        wait_until(lambda: reap_lost_jobs() or type(job).objects.get(pk=job.pk).state == JobState.LOST,
                   timeout=40, what="the reaper to mark the job lost")
        heir = start_worker(live_env, live_logs, name=f"heir-{queue}", concurrency=1, queues=queue)
        wait_until(lambda: fleet.exec(host.name, ["pgrep", "-f", marker]).exit_code == 1, timeout=60,
                   what="the remote command to be ended")
        target = wait_until(lambda: job.targets.filter(error__contains="was ended").first(), timeout=30,
                            what="the target to record it")
        # The note goes to the target first, then to the job's output, then to the audit log.
        wait_until(lambda: AuditEvent.objects.filter(action="job.sessions_ended", object_id=str(job.pk)).exists(),
                   timeout=30, what="the audit row")
    finally:
        doomed.stop()
        if heir is not None:
            heir.stop()
        fleet.exec(host.name, ["pkill", "-f", marker])
    assert target.state == TargetState.LOST
    assert target.error == f"the worker died; its remote session {session} was ended"
    assert target.data["session_ended"] is True
    # What was stored before the death is all there, in order, with no gap.
    assert stored_at_death[0] == "begun"
    assert stored_at_death[1:] == [f"tick {i}" for i in range(len(stored_at_death) - 1)]
    kept = list(JobEvent.objects.filter(job=job, kind="output").order_by("seq").values_list("text", flat=True))
    assert kept == stored_at_death
    assert JobEvent.objects.filter(job=job, text=target.error).exists()
    assert AuditEvent.objects.filter(action="job.sessions_ended", object_id=str(job.pk)).exists()
