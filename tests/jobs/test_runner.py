"""The runner against real subprocesses on the portal's machine, through a real Celery worker."""
import http.server
import os
import signal
import subprocess
import threading
import uuid

import pytest

from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch as launch_template
from ops_portal.jobs.launch import relaunch, request_cancel
from ops_portal.jobs.models import JobEvent, Lease
from ops_portal.jobs.templates import create_template
from ops_portal.jobs.windows import create_freeze
from tests.helpers import act, operator, person, wait_until
from tests.jobs.helpers import launch, local_hosts, wait_job
from tests.live import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def pgrep(pattern):
    result = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in result.stdout.split()]


def test_a_parallel_job_runs_every_target_and_stores_its_output_in_order(env, live_worker):
    local_hosts(env, 5)
    job = launch(operator(env), env, 'for i in 1 2 3; do echo "$OPSPORTAL_TARGET line $i"; done; echo oops >&2',
                 strategy={"kind": "parallel", "limit": 3})
    job = wait_job(job, JobState.SUCCEEDED)
    assert (job.targets_total, job.targets_done, job.targets_failed) == (5, 5, 0)
    assert all(t.state == TargetState.OK and t.exit_code == 0 for t in job.targets.all())
    seqs = list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and job.last_seq == len(seqs)
    for target in job.targets.all():
        lines = list(JobEvent.objects.filter(job=job, target=target.index, kind="output")
                     .order_by("seq").values_list("stream", "text"))
        assert lines == [("stdout", f"{target.name} line {i}") for i in (1, 2, 3)] + [("stderr", "oops")]
    actions = list(AuditEvent.objects.filter(object_id=str(job.pk), object_type="jobs.job")
                   .order_by("pk").values_list("action", "source"))
    assert actions == [("job.launch", "api"), ("job.running", "worker"), ("job.succeeded", "worker")]
    assert not Lease.objects.exists()


def test_a_failing_target_fails_alone_and_the_others_still_run(env, live_worker):
    local_hosts(env, 4)
    job = wait_job(launch(operator(env), env, 'test "$OPSPORTAL_TARGET" != h-2'), JobState.FAILED)
    states = dict(job.targets.values_list("name", "state"))
    assert states == {"h-1": "ok", "h-2": "failed", "h-3": "ok", "h-4": "ok"}
    assert job.targets.get(name="h-2").exit_code == 1 and job.targets_failed == 1


def test_a_rolling_rollout_stops_when_failures_pass_the_threshold(env, live_worker):
    local_hosts(env, 6)
    # h-3 fails after its batch-mate h-4 has started, so h-4 finishes; batch 3 never starts.
    job = launch(operator(env), env, 'if [ "$OPSPORTAL_TARGET" = h-3 ]; then sleep 1; exit 1; fi',
                 strategy={"kind": "rolling", "batch_size": 2, "max_failures": 0})
    job = wait_job(job, JobState.FAILED)
    states = dict(job.targets.values_list("name", "state"))
    assert states == {"h-1": "ok", "h-2": "ok", "h-3": "failed", "h-4": "ok", "h-5": "skipped", "h-6": "skipped"}
    assert "Rollout stopped: 1 targets failed (threshold 0)" in job.error


def test_a_failed_health_gate_stops_the_rollout(env, live_worker):
    local_hosts(env, 3)
    job = launch(operator(env), env, "true", strategy={
        "kind": "rolling", "batch_size": 1,
        "health_gate": {"type": "command", "command": "echo checking; exit 3", "retries": 2, "interval": 0}})
    job = wait_job(job, JobState.FAILED)
    assert list(job.targets.order_by("index").values_list("state", flat=True)) == ["ok", "skipped", "skipped"]
    texts = list(JobEvent.objects.filter(job=job, kind="info").values_list("text", flat=True))
    assert "gate: checking" in texts and "Health gate attempt 2: failed (exit 3)" in texts
    assert "the health gate failed" in job.error


def test_an_unreachable_http_health_gate_stops_the_rollout(env, live_worker):
    local_hosts(env, 3)
    job = launch(operator(env), env, "true", strategy={
        "kind": "rolling", "batch_size": 1, "pause_seconds": 0,
        "health_gate": {"type": "http", "url": "http://127.0.0.1:1/", "retries": 1, "timeout": 1, "interval": 0}})
    # Nothing listens on port 1: the gate fails after batch 1, proving it runs over HTTP.
    job = wait_job(job, JobState.FAILED)
    assert list(job.targets.order_by("index").values_list("state", flat=True)) == ["ok", "skipped", "skipped"]
    assert "Health gate attempt 1: failed (ConnectionError" in " ".join(
        JobEvent.objects.filter(job=job, kind="info").values_list("text", flat=True))


@pytest.fixture
def health_endpoint():
    """An HTTP endpoint on 127.0.0.1 that answers 200 and counts the checks it served."""
    checks = []

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            checks.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", checks
    server.shutdown()
    server.server_close()


def test_a_passing_health_gate_lets_the_rollout_continue(env, live_worker, health_endpoint):
    url, checks = health_endpoint
    local_hosts(env, 3)
    job = launch(operator(env), env, 'echo "deployed $OPSPORTAL_TARGET"', strategy={
        "kind": "rolling", "batch_size": 1, "pause_seconds": 0,
        "health_gate": {"type": "http", "url": url, "retries": 1, "timeout": 5, "interval": 0}})
    job = wait_job(job, JobState.SUCCEEDED)
    assert list(job.targets.order_by("index").values_list("state", flat=True)) == ["ok", "ok", "ok"]
    texts = list(JobEvent.objects.filter(job=job, kind="info").values_list("text", flat=True))
    # Between batches 1-2 and 2-3, not after the last: two checks, both passed, the rollout went on.
    assert texts.count("Health gate attempt 1: passed (HTTP 200)") == 2
    assert checks == ["/healthz", "/healthz"]
    assert "Batch 3 of 3: 1 targets." in texts and not job.error


def test_a_second_job_on_the_same_target_waits_for_the_lease(env, live_worker):
    local_hosts(env, 1)
    actor = operator(env)
    first = launch(actor, env, "sleep 2")
    wait_job(first, JobState.RUNNING)
    second = launch(actor, env, "echo second")
    waiting = wait_until(lambda: type(second).objects.filter(pk=second.pk, waiting_reason__startswith="waiting")
                         .first(), what="the second job to wait")
    assert waiting.state == JobState.QUEUED
    assert waiting.waiting_reason == f"waiting for lease on h-1 (held by job #{first.pk})"
    first, second = wait_job(first, JobState.SUCCEEDED), wait_job(second, JobState.SUCCEEDED)
    assert second.started >= first.finished


def test_cancel_ends_the_whole_process_group_before_the_job_shows_canceled(env, live_worker):
    local_hosts(env, 2)
    marker = f"31{uuid.uuid4().int % 10**6:06d}"
    actor = operator(env)
    job = launch(actor, env, f"sleep {marker} & sleep {marker}1 & echo started; wait")
    wait_job(job, JobState.RUNNING)
    wait_until(lambda: len(pgrep(f"sleep {marker}")) >= 4, what="the sleeps to start")
    request_cancel(actor, job)
    job = wait_job(job, JobState.CANCELED, timeout=30)
    assert pgrep(f"sleep {marker}") == []
    assert set(job.targets.values_list("state", flat=True)) == {TargetState.CANCELED}
    assert AuditEvent.objects.filter(action="job.cancel_requested", object_id=str(job.pk)).exists()


def test_cancelling_a_queued_job_ends_it_at_once(env):
    local_hosts(env, 1)
    actor = operator(env)
    job = launch(actor, env, "true")  # no worker consumes in this test
    job = request_cancel(actor, job)
    assert job.state == JobState.CANCELED


def test_the_job_timeout_ends_it_as_timed_out(env, live_worker):
    local_hosts(env, 1)
    marker = f"32{uuid.uuid4().int % 10**6:06d}"
    job = wait_job(launch(operator(env), env, f"sleep {marker}", timeout_seconds=2), JobState.TIMED_OUT, 30)
    assert job.targets.get().state == TargetState.TIMED_OUT
    assert pgrep(f"sleep {marker}") == []


def test_a_target_timeout_fails_that_target(env, live_worker):
    local_hosts(env, 2)
    job = launch(operator(env), env, 'if [ "$OPSPORTAL_TARGET" = h-1 ]; then sleep 30; fi',
                 target_timeout_seconds=1)
    job = wait_job(job, JobState.FAILED, 30)
    assert dict(job.targets.values_list("name", "state")) == {"h-1": "timed_out", "h-2": "ok"}


def test_a_freeze_holds_new_jobs_but_an_emergency_runs(env, live_worker):
    from datetime import timedelta

    from django.utils import timezone

    local_hosts(env, 1)
    admin_actor = act(person(env, "admin"))
    create_freeze(admin_actor, environment=env, starts=timezone.now() - timedelta(minutes=1),
                           ends=timezone.now() + timedelta(hours=1), reason="quarter close")
    held = launch(operator(env), env, "true")
    held = wait_until(lambda: type(held).objects.filter(pk=held.pk, waiting_reason__startswith="frozen").first(),
                      what="the job to be held")
    assert held.state == JobState.QUEUED and "quarter close" in held.waiting_reason
    urgent = launch(admin_actor, env, "true", emergency=True, emergency_reason="INC-7 outage")
    wait_job(urgent, JobState.SUCCEEDED)
    request_cancel(admin_actor, held)


def test_a_job_whose_worker_is_killed_is_marked_lost(env, live_env, live_logs):
    from ops_portal.jobs.models import JobTemplate
    from ops_portal.jobs.tasks import reap_lost_jobs

    local_hosts(env, 2)
    actor = act(person(env, "admin"))
    template = create_template(actor, name="slow", environment=env, action="host.command",
                                        selector={"all": True}, action_params={"command": "echo begun; sleep 37"},
                                        queue="doomed")
    doomed = start_worker(live_env, live_logs, name="doomed", concurrency=1, queues="doomed")
    try:
        job = launch_template(actor, template)
        wait_job(job, JobState.RUNNING)
        wait_until(lambda: JobEvent.objects.filter(job=job, text="begun").count() == 2, what="output")
        os.killpg(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait()
        wait_until(lambda: reap_lost_jobs() or type(job).objects.get(pk=job.pk).state == JobState.LOST,
                   timeout=40, what="the reaper to mark the job lost")
    finally:
        doomed.stop()
        subprocess.run(["pkill", "-f", "sleep 37"])
    job = type(job).objects.get(pk=job.pk)
    assert job.state == JobState.LOST and "no heartbeat" in job.error
    assert set(job.targets.values_list("state", flat=True)) == {TargetState.LOST}
    assert JobEvent.objects.filter(job=job, text="begun").count() == 2  # what it did is kept
    assert not Lease.objects.filter(job=job).exists()
    assert AuditEvent.objects.filter(action="job.lost", object_id=str(job.pk)).exists()
    assert JobTemplate.objects.filter(pk=template.pk).exists()


def test_relaunch_runs_the_same_plan_again(env, live_worker):
    local_hosts(env, 2)
    actor = operator(env)
    first = wait_job(launch(actor, env, "echo again"), JobState.SUCCEEDED)
    second = relaunch(actor, first)
    second = wait_job(second, JobState.SUCCEEDED)
    assert second.relaunch_of_id == first.pk and second.plan_hash == first.plan_hash
    assert list(second.targets.values_list("name", flat=True)) == ["h-1", "h-2"]


def test_the_full_output_downloads_as_text(env, live_worker, api):
    local_hosts(env, 1)
    actor = operator(env)
    job = wait_job(launch(actor, env, "seq 1 2500"), JobState.SUCCEEDED)
    api.force_authenticate(actor.user)
    response = api.get(f"/api/jobs/{job.pk}/output/")
    text = b"".join(response.streaming_content).decode()
    assert text.count("h-1 | ") == 2500 and "h-1 | 2500\n" in text
    page = api.get(f"/api/jobs/{job.pk}/events/", {"after": 2000, "limit": 10}).json()
    assert [e["seq"] for e in page] == list(range(2001, 2011))


def test_a_stopped_rollout_rolls_back_the_targets_it_changed(env, live_worker):
    local_hosts(env, 3)
    job = launch(operator(env), env, "echo changed", strategy={
        "kind": "rolling", "batch_size": 1, "rollback_action": "host.command",
        "health_gate": {"type": "command", "command": "exit 1", "retries": 1, "interval": 0}})
    job = wait_job(job, JobState.FAILED)
    assert list(job.targets.order_by("index").values_list("state", flat=True)) == [
        TargetState.ROLLED_BACK, TargetState.SKIPPED, TargetState.SKIPPED]
    texts = list(JobEvent.objects.filter(job=job, kind="info").values_list("text", flat=True))
    assert "Rolling back 1 targets with host.command." in texts
    assert JobEvent.objects.filter(job=job, target=0, text="changed").count() == 2  # the change, then the undo
