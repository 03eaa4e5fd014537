"""Container operations through the portal against the real engine (service -> job -> live worker ->
engine): lifecycle, logs tail and follow, stats into the container's metric series, exec with its
exit code, bulk; approval policies gate mutating work only."""
import json
import re
import time

import pytest

from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.containers import engines, services, sync
from ops_portal.containers.models import Container
from ops_portal.containers.tasks import collect_stats
from ops_portal.core.context import Actor
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import Job, JobEvent
from ops_portal.monitoring import services as monitoring_services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert, Sample
from schedulers import container as backend
from tests import factories
from tests.containers.helpers import engine as make_engine
from tests.containers.helpers import operator
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


@pytest.fixture
def local(env, engine):
    from ops_portal.inventory.choices import Transport

    host = factories.host(env, "portal-machine", transport=Transport.LOCAL)
    row = make_engine(env, host=host)
    engines.check(row)
    return row


def running_container(docker_client, engine, local, image, name):
    created = docker_client.containers.run(image, name=name, detach=True, labels={"opsportal.test": "ct"})
    sync.resync(local.pk, backend.snapshot(engine))
    return created, Container.objects.get(engine=local, docker_id=created.id)


def say(docker_client, container_id, text):
    """Write a line to the container's own stdout (what its logs show)."""
    exec_id = docker_client.api.exec_create(container_id, ["sh", "-c", f"echo {text} >/proc/1/fd/1"])
    docker_client.api.exec_start(exec_id)


def lines(job, stream=None):
    rows = JobEvent.objects.filter(job=job, kind="output").order_by("seq")
    if stream:
        rows = rows.filter(stream=stream)
    return list(rows.values_list("text", flat=True))


def test_stop_start_and_kill_change_the_container_and_its_row(env, local, engine, docker_client, ct_images, prefix,
                                                               live_worker):
    actor = operator(env)
    created, row = running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-life")
    job = wait_job(services.launch_containers(actor, "container.stop", [row], {"timeout": 2}), "succeeded", 60)
    assert docker_client.api.inspect_container(created.id)["State"]["Status"] == "exited"
    assert Container.objects.get(pk=row.pk).state == "exited"  # stored by the job, not only by the watcher
    assert job.targets.get().data["state"] == "exited"
    wait_job(services.launch_containers(actor, "container.start", [row]), "succeeded", 60)
    assert Container.objects.get(pk=row.pk).state == "running"
    job = wait_job(services.launch_containers(actor, "container.kill", [row], {"signal": "TERM"}), "succeeded", 60)
    assert job.params["signal"] == "TERM"
    for _ in range(50):  # the signal is delivered at once; the process takes a moment to end
        state = docker_client.api.inspect_container(created.id)["State"]
        if state["Status"] == "exited":
            break
        time.sleep(0.1)
    # What the watcher does on the "die" event: the row shows the exit.
    sync.EngineSync(local.pk).refresh_container(engine, created.id, "die")
    assert state["Status"] == "exited" and Container.objects.get(pk=row.pk).exit_code == state["ExitCode"]


def test_logs_tail_and_follow_for_a_duration(env, local, engine, docker_client, ct_images, prefix, live_worker):
    created, row = running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-logs")
    say(docker_client, created.id, "hello-tail")
    job = wait_job(services.launch_containers(operator(env), "container.logs", [row], {"tail": 50}), "succeeded", 60)
    assert "hello-tail" in lines(job)
    started = time.monotonic()
    job = services.launch_containers(operator(env), "container.logs", [row], {"tail": 0, "follow": True,
                                                                               "duration": 4})
    time.sleep(1.5)
    say(docker_client, created.id, "followed")
    job = wait_job(job, "succeeded", 60)
    assert "followed" in lines(job) and "hello-tail" not in lines(job)
    assert time.monotonic() - started >= 4


def test_stats_are_stored_in_the_containers_series_and_exec_returns_its_exit_code(
        env, local, engine, docker_client, ct_images, prefix, live_worker):
    created, row = running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-stats")
    job = wait_job(services.launch_containers(operator(env), "container.stats", [row], {"samples": 2}), "succeeded",
                   60)
    assert job.targets.get().data["samples"] == 2 and "cpu " in lines(job)[0]
    stored = Sample.objects.filter(series__host=local.host, series__mount=row.metric_key,
                                   series__metric="ctr_mem_bytes")
    assert stored.count() >= 1 and stored.first().value > 0
    argv = json.dumps(["sh", "-c", "echo out; echo err >&2; exit 3"])
    job = wait_job(services.launch_containers(operator(env), "container.exec", [row], {"argv": argv}), "failed", 60)
    target = job.targets.get()
    assert target.exit_code == 3 and lines(job, "stdout") == ["out"] and lines(job, "stderr") == ["err"]


def test_the_periodic_sampling_feeds_a_container_metric_rule_that_fires_on_the_busy_container_only(
        env, local, engine, docker_client, ct_images, prefix, live_worker):
    busy, busy_row = running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-busy")
    _, quiet_row = running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-quiet")
    loop = docker_client.api.exec_create(busy.id, ["sh", "-c", "while [ ! -e /tmp/stop ]; do :; done"])
    docker_client.api.exec_start(loop, detach=True)
    # Low: a busy loop gets a part of a core however loaded the machine is; an idle web server ~0 %.
    rule = monitoring_services.create_rule(
        Actor.system(), environment=env, name="hot", kind="container_metric", metric="ctr_cpu_percent",
        threshold=8, clear_threshold=4, for_seconds=0, name_filter=f"{prefix}-*")

    def sample():
        [job_id] = collect_stats(parallel=4)
        job = wait_job(Job.objects.get(pk=job_id), "succeeded", 120)
        # The shared engine runs other containers too (the fleet's): they are sampled as well.
        running = Container.objects.filter(engine=local, state="running").count()
        data = job.targets.get().data
        assert (job.action, job.created_by, data["failed"]) == ("engine.container_stats", None, 0)
        assert 2 <= data["sampled"] <= running
        assert re.match(rf"sampled {data['sampled']} of {running} running containers on local in \d", lines(job)[0])
        return job

    sample()
    cpu = {row.name: Sample.objects.filter(series__host=local.host, series__mount=row.metric_key,
                                           series__metric="ctr_cpu_percent").latest("time").value
           for row in (busy_row, quiet_row)}
    assert cpu[busy_row.name] > 8 > 4 > cpu[quiet_row.name], cpu
    evaluate(environment_id=env.pk)  # the job's end asks the worker to evaluate too: either fires it
    [alert] = Alert.objects.filter(rule=rule)
    assert (alert.state, alert.subject_kind, alert.subject_id, alert.host_id) == (
        "firing", "container", busy_row.pk, local.host_id)

    docker_client.api.exec_start(docker_client.api.exec_create(busy.id, ["touch", "/tmp/stop"]))
    time.sleep(1)
    sample()
    evaluate(environment_id=env.pk)
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "the value is back past the clear threshold")

    # The second pass wrote I/O rates against the counters of the pass before it.
    def stored(row, metric):
        return dict(Sample.objects.filter(series__host=local.host, series__mount=row.metric_key,
                                          series__metric=metric).values_list("time", "value"))

    for counter, rate in (("ctr_net_rx", "ctr_rx_rate"), ("ctr_blk_write", "ctr_blkw_rate")):
        counters, rates = stored(quiet_row, counter), stored(quiet_row, rate)
        assert rates, (counter, counters)
        at = max(rates)
        before = max(t for t in counters if t < at)
        assert rates[at] == pytest.approx((counters[at] - counters[before]) / (at - before), abs=0.001)


def test_bulk_restart_is_one_job_with_a_target_per_container(env, local, engine, docker_client, ct_images, prefix,
                                                             live_worker):
    rows = [running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-bulk{i}")[1]
            for i in range(3)]
    job = services.launch_containers(operator(env), "container.restart", rows, {"timeout": 1},
                                     strategy={"kind": "rolling", "batch_size": 1})
    job = wait_job(job, "succeeded", 120)
    assert job.targets.filter(state="ok").count() == 3 and job.targets.values("batch").distinct().count() == 3
    for row in rows:
        assert docker_client.api.inspect_container(row.docker_id)["RestartCount"] == 0  # a restart is not a crash
        assert docker_client.api.inspect_container(row.docker_id)["State"]["Status"] == "running"


def test_policies_gate_mutating_container_work_and_let_reads_through(env, local, engine, docker_client, ct_images,
                                                                     prefix):
    ApprovalPolicy.objects.create(name="changes", environment=env, risks=["mutating"], approvals_required=1)
    ApprovalPolicy.objects.create(name="removals", environment=env, risks=["destructive"], approvals_required=2)
    created, row = running_container(docker_client, engine, local, ct_images["web:v1"], f"{prefix}-gate")
    assert services.launch_containers(operator(env), "container.stop", [row]).state == JobState.PENDING_APPROVAL
    removal = services.launch_containers(operator(env), "container.remove", [row], {"force": True})
    assert removal.state == JobState.PENDING_APPROVAL and removal.approval_request.required == 2
    assert services.launch_containers(operator(env), "container.logs", [row]).state == JobState.QUEUED
