"""Swarm services through the portal, against the real engine: API-level services launch jobs that
a live worker runs; the jobs follow convergence task by task."""
import json

import pytest

from ops_portal.containers import services
from ops_portal.containers.models import Service
from ops_portal.jobs.models import JobEvent
from tests.containers.helpers import operator, running_tasks, synced_engine
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


@pytest.fixture
def local(env, engine):
    return synced_engine(env, engine)


def _seconds(text):
    from ops_portal.containers.sync import when

    return when(text).timestamp()


def web_spec(prefix, image, **fields):
    return {"name": f"{prefix}-web", "image": image, "replicas": 1, "ports": [{"target": 8080}], **fields}


def test_create_then_scale_one_to_five_to_two(env, local, docker_client, ct_images, prefix, live_worker):
    actor = operator(env)
    job = wait_job(services.create_service(actor, local, web_spec(prefix, ct_images["web:v1"])), "succeeded", 120)
    service = Service.objects.get(engine=local, name=f"{prefix}-web")
    assert service.replicas_running == 1 and service.publish_mode == "host" and service.endpoint_mode == "dnsrr"
    target = job.targets.get()
    assert target.data["outcome"] == "converged" and [t["state"] for t in target.data["tasks"]] == ["running"]
    lines = list(JobEvent.objects.filter(job=job, kind="output").values_list("text", flat=True))
    assert any("running (desired running)" in line for line in lines), lines
    for replicas in (5, 2):
        job = wait_job(services.scale_service(actor, Service.objects.get(pk=service.pk), replicas), "succeeded", 180)
        assert len(running_tasks(docker_client, service.service_id)) == replicas
        assert Service.objects.get(pk=service.pk).replicas_running == replicas
        assert job.targets.get().data["running"] == replicas


def test_rolling_update_to_v2_one_task_at_a_time(env, local, docker_client, ct_images, prefix, live_worker):
    actor = operator(env)
    spec = web_spec(prefix, ct_images["web:v1"], replicas=3,
                    update_config={"parallelism": 1, "delay": 0, "monitor": 1, "order": "stop-first"})
    wait_job(services.create_service(actor, local, spec), "succeeded", 120)
    service = Service.objects.get(engine=local, name=f"{prefix}-web")
    job = wait_job(services.update_service(actor, service, {"image": ct_images["web:v2"], "parallelism": 1}),
                   "succeeded", 240)
    assert job.targets.get().data["outcome"] == "update_completed"
    new = running_tasks(docker_client, service.service_id)
    assert {t["Spec"]["ContainerSpec"]["Image"] for t in new} == {ct_images["web:v2"]}
    assert docker_client.api.inspect_service(service.service_id)["Spec"]["UpdateConfig"]["Parallelism"] == 1
    # One task at a time: each new task was made only after the previous one ran for the 1 s monitor.
    made = sorted(_seconds(t["CreatedAt"]) for t in new)
    assert all(later - earlier >= 0.9 for earlier, later in zip(made, made[1:], strict=False)), made
    lines = [t for t in JobEvent.objects.filter(job=job, kind="output").values_list("text", flat=True)
             if " task " in t]
    assert lines, "each task's state changes are output lines"


def test_an_update_to_a_crashing_image_rolls_back_and_the_job_fails_in_the_engines_words(
        env, local, docker_client, ct_images, prefix, live_worker):
    actor = operator(env)
    spec = web_spec(prefix, ct_images["web:v1"], replicas=2,
                    update_config={"parallelism": 1, "delay": 0, "monitor": 5, "failure_action": "rollback"},
                    rollback_config={"parallelism": 0, "delay": 0, "monitor": 1})
    wait_job(services.create_service(actor, local, spec), "succeeded", 120)
    service = Service.objects.get(engine=local, name=f"{prefix}-web")
    crashing = {**service.spec, "image": ct_images["crasher"], "env": {"CRASH_AFTER": "1"}}
    job = wait_job(services.update_service(actor, service, {"spec": crashing}), "failed", 240)
    target = job.targets.get()
    assert target.data["outcome"] == "rolled_back", target.data
    assert "rolled back" in target.error and "non-zero exit (3)" in target.error, target.error
    assert any("non-zero exit (3)" in t["error"] for t in target.data["tasks"]), target.data["tasks"]
    images = {t["Spec"]["ContainerSpec"]["Image"] for t in running_tasks(docker_client, service.service_id)}
    assert images == {ct_images["web:v1"]}


def test_a_bad_spec_is_a_field_error_and_launches_nothing(env, local, ct_images, prefix):
    from django.core.exceptions import ValidationError

    from ops_portal.jobs.models import Job

    with pytest.raises(ValidationError) as caught:
        services.create_service(operator(env), local, web_spec(prefix, "Bad Image!!", replicas=5000))
    fields = caught.value.message_dict
    assert "spec.image" in fields and "spec.replicas" in fields, fields
    with pytest.raises(ValidationError):
        services.create_service(operator(env), local, json.dumps([1, 2]))
    assert not Job.objects.exists()


def test_the_sampling_job_averages_a_services_busy_tasks_and_a_service_metric_rule_fires(
        env, local, docker_client, ct_images, prefix, live_worker):
    """The minute's sampling job samples both tasks' containers (each in a busy loop) and, when it
    ends, writes the service's average of them into the service's series; the rule fires about the
    service at that average."""
    from ops_portal.containers import sync
    from ops_portal.containers.models import Container, service_metric_key
    from ops_portal.containers.tasks import collect_stats
    from ops_portal.core.context import Actor
    from ops_portal.jobs.models import Job
    from ops_portal.monitoring import services as monitoring
    from ops_portal.monitoring.evaluation import evaluate
    from ops_portal.monitoring.models import Alert, Sample
    from schedulers import container as backend
    from tests import factories

    local.host = factories.host(env, f"{prefix}-manager")  # whose series hold the samples
    local.save(update_fields=["host"])
    wait_job(services.create_service(operator(env), local, web_spec(prefix, ct_images["web:v1"], replicas=2)),
             "succeeded", 120)
    service = Service.objects.get(engine=local, name=f"{prefix}-web")
    tasks = running_tasks(docker_client, service.service_id)
    assert len(tasks) == 2
    for task in tasks:
        loop = docker_client.api.exec_create(task["Status"]["ContainerStatus"]["ContainerID"],
                                             ["sh", "-c", "while [ ! -e /tmp/stop ]; do :; done"])
        docker_client.api.exec_start(loop, detach=True)
    sync.resync(local.pk, backend.snapshot(docker_client))  # the tasks' containers, with their service
    rule = monitoring.create_rule(Actor.system(), environment=env, name="busy", kind="service_metric",
                                  metric="svc_cpu_percent", threshold=8, for_seconds=0, name_filter=f"{prefix}-*")
    [job_id] = collect_stats(parallel=64)
    wait_job(Job.objects.get(pk=job_id), "succeeded", 180)
    tasks_cpu = [Sample.objects.filter(series__mount=row.metric_key, series__metric="ctr_cpu_percent").latest("time")
                 .value for row in Container.objects.filter(engine=local, service_id=service.service_id,
                                                            state="running")]
    average = Sample.objects.get(series__host=local.host, series__mount=service_metric_key(service.pk),
                                 series__metric="svc_cpu_percent").value
    assert len(tasks_cpu) == 2 and average == pytest.approx(sum(tasks_cpu) / 2, abs=0.01), (tasks_cpu, average)
    assert average > 8, tasks_cpu  # a busy loop gets a part of a core however loaded the machine is
    evaluate(environment_id=env.pk)  # the job's end asks the worker to evaluate too: either fires it
    [alert] = Alert.objects.filter(rule=rule)
    assert (alert.state, alert.subject_kind, alert.subject_id, alert.host_id) == (
        "firing", "service", service.pk, local.host_id)
