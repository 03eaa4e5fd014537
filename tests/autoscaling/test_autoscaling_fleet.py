"""Autoscaling against the real engine in Swarm mode with the fleet's burner image: replicas go up
when the service's CPU goes over the target, and down again once it is idle and the cooldown has
passed; each decision is a service.scale job a live worker runs. Evaluations are triggered directly
(keys of the test's own), then once through the real beat schedule entry."""
import json
import time
import urllib.request

import pytest
from django_celery_beat.models import PeriodicTask

from ops_portal.audit.models import AuditEvent
from ops_portal.autoscaling import evaluation
from ops_portal.autoscaling.choices import Outcome
from ops_portal.autoscaling.models import Evaluation
from ops_portal.containers import services
from ops_portal.containers.models import Service
from ops_portal.core import periodic
from ops_portal.jobs.models import JobEvent
from tests.autoscaling.helpers import policy
from tests.containers.helpers import operator, running_tasks, synced_engine
from tests.helpers import wait_until
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]
BURN_SECONDS = 10
# Low, so that a burning task is over it however loaded the machine is (a busy loop got 32 % of a core
# in a full suite run on two cores); an idle burner measures about 0 %.
TARGET = 15.0
DOWN_COOLDOWN = 25


@pytest.fixture
def local(env, engine):
    return synced_engine(env, engine)


def task_port(docker_client, task):
    """The host-mode port of a task's container on 127.0.0.1 (IPv4 binding)."""
    ports = docker_client.api.inspect_container(task["Status"]["ContainerStatus"]["ContainerID"])[
        "NetworkSettings"]["Ports"]["8080/tcp"]
    return next(int(p["HostPort"]) for p in ports if ":" not in p["HostIp"])


def test_burner_cpu_over_target_scales_up_then_idle_scales_down_after_cooldown(
        env, local, docker_client, ct_images, prefix, live_worker, live_beat):
    actor = operator(env)
    spec = {"name": f"{prefix}-burn", "image": ct_images["burner"], "replicas": 1, "ports": [{"target": 8080}]}
    wait_job(services.create_service(actor, local, spec), "succeeded", 120)
    service = Service.objects.get(engine=local, name=f"{prefix}-burn")
    p = policy(local, service.name, min_replicas=1, max_replicas=3, target=TARGET, max_step_up=2, max_step_down=2,
               up_cooldown=0, down_cooldown=DOWN_COOLDOWN, interval=10)

    # Idle: nothing to do.
    idle = evaluation.evaluate(p, "test:idle")
    assert idle.outcome == Outcome.HOLD and idle.current_replicas == 1 and idle.value < TARGET * 0.5, idle.reason

    # One task burns two busy loops: over the target even when the machine's other work leaves it only a
    # part of a core; the policy scales up (by 2 at most, to 3 at most).
    [task] = running_tasks(docker_client, service.service_id)
    url = f"http://127.0.0.1:{task_port(docker_client, task)}/cgi-bin/burn?seconds={BURN_SECONDS}&workers=2"
    urllib.request.urlopen(url, timeout=5).read()
    time.sleep(1.5)
    up = evaluation.evaluate(p, "test:burning")
    assert up.outcome == Outcome.SCALE_UP, up.reason
    assert up.value > TARGET * 1.1 and up.current_replicas == 1 and up.desired_replicas in (2, 3), up.reason
    job = wait_job(up.job, "succeeded", 120)
    assert len(running_tasks(docker_client, service.service_id)) == up.desired_replicas
    assert job.params["replicas"] == up.desired_replicas and "CPU" in job.params["reason"]
    assert JobEvent.objects.filter(job=job, kind="output", text__startswith="why: autoscaling policy").exists()
    assert AuditEvent.objects.filter(action="scalingpolicy.scale", extra__job=job.pk).exists()
    scaled_at = Evaluation.objects.get(pk=up.pk).finished

    # The burn ends: idle again, but the down cooldown holds the replicas...
    time.sleep(max(0.0, BURN_SECONDS + 2.5 - (time.time() - scaled_at.timestamp())))
    held = evaluation.evaluate(p, "test:cooling")
    assert (time.time() - scaled_at.timestamp()) < DOWN_COOLDOWN, "the test ran too slowly to see the cooldown"
    assert held.outcome == Outcome.HOLD and "down cooldown" in held.reason and held.value < TARGET * 0.5, held.reason
    assert held.current_replicas == up.desired_replicas

    # ...until it has passed; then one decision brings the service back to its minimum.
    time.sleep(max(0.0, DOWN_COOLDOWN + 0.5 - (time.time() - scaled_at.timestamp())))
    down = evaluation.evaluate(p, "test:cooled")
    assert down.outcome == Outcome.SCALE_DOWN and down.desired_replicas == 1, down.reason
    wait_job(down.job, "succeeded", 120)
    assert len(running_tasks(docker_client, service.service_id)) == 1
    history = list(Evaluation.objects.filter(policy=p).order_by("created").values_list("outcome", flat=True))
    assert history == [Outcome.HOLD, Outcome.SCALE_UP, Outcome.HOLD, Outcome.SCALE_DOWN]

    # The beat's own schedule entry evaluates the policy through a worker, one slot at a time.
    periodic.ensure_builtins()
    entry = PeriodicTask.objects.get(name="autoscaling: evaluate")
    assert entry.task == "autoscaling.tick" and json.loads(entry.kwargs) == {}
    entry.enabled = True
    entry.save()
    try:
        by_beat = wait_until(lambda: Evaluation.objects.filter(policy=p, key__startswith="slot:",
                                                               finished__isnull=False).first(), 40,
                             "an evaluation by the beat")
    finally:
        entry.enabled = False
        entry.save()
    assert by_beat.outcome == Outcome.HOLD and by_beat.current_replicas == 1, by_beat.reason
