"""A "container not running" rule against the real engine: the watcher's event refresh stores a
stopped container, the evaluation raises an alert about it, and resolves it once it runs again."""
import math
import time

from ops_portal.containers import sync
from ops_portal.containers.models import Container
from ops_portal.core.context import Actor
from ops_portal.monitoring import services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert
from schedulers import container as backend
from tests.containers.helpers import engine as make_engine


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
