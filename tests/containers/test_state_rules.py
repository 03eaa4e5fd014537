"""State rules against the real engine: a "container not running" rule, whose alert the watcher's
event refresh of a stopped container raises and its start resolves; a "service short" rule, whose
alert a Swarm service with tasks no node can take raises and its fix resolves."""
import dataclasses
import math
import time

from ops_portal.containers import sync
from ops_portal.containers.models import Container, Service
from ops_portal.core.context import Actor
from ops_portal.monitoring import services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert
from schedulers import container as backend
from schedulers.container import ServiceSpec, UpdatePolicy, wait_converged
from schedulers.container import inventory as inv
from schedulers.container import services as svc
from tests.containers.helpers import engine as make_engine
from tests.containers.helpers import running_tasks, synced_engine
from tests.helpers import wait_until


def test_a_real_container_stopped_fires_its_alert_and_resolves_when_started_again(
        env, engine, docker_client, ct_images, prefix):
    created = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-state", detach=True)
    row = make_engine(env)
    sync.resync(row.pk, backend.snapshot(engine))
    rule = services.create_rule(Actor.system(), environment=env, name="down", kind="container_not_running",
                                name_filter=f"{prefix}-*", severity="critical", for_seconds=1)
    assert evaluate(environment_id=env.pk) == {"fired": 0, "resolved": 0}

    created.stop(timeout=2)
    engine_sync = sync.EngineSync(row.pk)
    engine_sync.refresh_container(engine, created.id, "die")  # what the watcher does on the event
    stored = Container.objects.get(engine=row, docker_id=created.id)
    assert stored.state == "exited" and stored.finished_at is not None
    # Evaluation counts in whole seconds: wait until its exit is for_seconds old by that count.
    time.sleep(max(0.0, math.floor(stored.finished_at.timestamp()) + 2 - time.time()))
    assert evaluate(environment_id=env.pk) == {"fired": 1, "resolved": 0}
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.subject_kind, alert.subject_id, alert.subject_name) == (
        "firing", "container", stored.pk, f"{prefix}-state")
    assert evaluate(environment_id=env.pk) == {"fired": 0, "resolved": 0}

    created.start()
    engine_sync.refresh_container(engine, created.id, "start")
    assert Container.objects.get(pk=stored.pk).state == "running"
    assert evaluate(environment_id=env.pk) == {"fired": 0, "resolved": 1}
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "the container is running again")


def test_a_swarm_service_short_of_tasks_alerts_and_resolves_when_it_runs_them_all(
        env, engine, docker_client, ct_images, prefix):
    # Two replicas, no published port (dnsrr: no IPVS here), all tasks replaced at once on update.
    spec = ServiceSpec(name=f"{prefix}-svc", image=ct_images["web:v1"], replicas=2, endpoint_mode="dnsrr",
                       update_config=UpdatePolicy(parallelism=0, delay=0, order="stop-first", monitor=1))
    change = svc.create(engine, spec)
    assert wait_converged(engine, change, timeout=90, stable_for=0).ok
    row = synced_engine(env, engine)
    stored = Service.objects.get(engine=row, service_id=change.service_id)
    assert (stored.replicas_running, stored.replicas_desired) == (2, 2)
    rule = services.create_rule(Actor.system(), environment=env, name="short", kind="service_short",
                                name_filter=f"{prefix}-*", severity="warning", for_seconds=0)
    assert evaluate(environment_id=env.pk) == {"fired": 0, "resolved": 0}

    # A placement constraint no node satisfies: the old tasks stop, the new ones stay pending.
    nowhere = f"node.labels.{prefix}==nowhere"
    svc.update(engine, change.service_id, dataclasses.replace(spec, constraints=[nowhere]))
    wait_until(lambda: inv.service(engine, change.service_id).replicas_running == 0, 90, "no task running")
    assert running_tasks(docker_client, change.service_id) == []
    engine_sync = sync.EngineSync(row.pk)
    engine_sync.refresh_service(engine, change.service_id)  # what the watcher's flush does on the events
    stored.refresh_from_db()
    assert (stored.replicas_running, stored.replicas_desired) == (0, 2)
    assert evaluate(environment_id=env.pk) == {"fired": 1, "resolved": 0}
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.subject_kind, alert.subject_id, alert.subject_name) == (
        "firing", "service", stored.pk, f"{prefix}-svc")
    assert alert.host_id == row.host_id and "0 of 2 tasks running" in alert.summary, alert.summary
    assert evaluate(environment_id=env.pk) == {"fired": 0, "resolved": 0}

    # The constraint removed: both tasks are placed and run again.
    fixed = svc.update(engine, change.service_id, spec)
    assert wait_converged(engine, fixed, timeout=90, stable_for=0).ok
    assert len(running_tasks(docker_client, change.service_id)) == 2
    engine_sync.refresh_service(engine, change.service_id)
    stored.refresh_from_db()
    assert (stored.replicas_running, stored.replicas_desired) == (2, 2)
    assert evaluate(environment_id=env.pk) == {"fired": 0, "resolved": 1}
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "the Swarm service runs all its tasks again")
