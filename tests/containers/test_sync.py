"""Syncing an engine's inventory into the database: a full resync from the real engine, bulk and
idempotent; single containers refreshed from events; changes announced to self-healing."""
import datetime
import time

import pytest

from ops_portal.containers import sync
from ops_portal.containers.models import Container, Image, Network, Service, Task
from ops_portal.containers.signals import container_changed
from schedulers import container as backend
from tests.containers.helpers import engine as make_engine

pytestmark = pytest.mark.fleet


def test_engine_times_are_read_to_the_microsecond():
    assert sync.when("2024-05-01T10:20:30.123456789Z") == datetime.datetime(2024, 5, 1, 10, 20, 30, 123456,
                                                                            tzinfo=datetime.UTC)
    assert sync.when("0001-01-01T00:00:00Z") is None and sync.when("") is None and sync.when(0) is None
    assert sync.when(1700000000) == datetime.datetime.fromtimestamp(1700000000, datetime.UTC)
    assert sync.when("2024-05-01T10:20:30+02:00").utcoffset() == datetime.timedelta(hours=2)


def test_a_moved_tag_is_an_image_update_and_a_pinned_digest_is_not():
    tags = {"web:v1": "sha256:new", "nginx:latest": "sha256:n"}
    assert sync.image_update("web:v1", ["sha256:old"], tags)["update_available"] is True
    assert sync.image_update("web:v1", ["sha256:new"], tags)["update_available"] is False
    assert sync.image_update("nginx", ["sha256:n"], tags)["reference"] == "nginx:latest"
    assert sync.image_update("web:v1@sha256:abc", ["sha256:old"], tags)["update_available"] is False
    assert "not tagged" in sync.image_update("gone:1", ["sha256:x"], tags)["message"]


def test_resync_writes_what_the_engine_has_and_is_idempotent(env, engine, docker_client, ct_images, prefix):
    docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-a", detach=True, labels={"team": "ct"})
    row = make_engine(env)
    snap = backend.snapshot(engine)
    result = sync.resync(row.pk, snap, info=backend.probe(engine))
    assert result["containers"] == len(snap.containers) == Container.objects.filter(engine=row).count()
    mine = Container.objects.get(engine=row, name=f"{prefix}-a")
    assert (mine.state, mine.labels["team"], mine.image) == ("running", "ct", ct_images["web:v1"])
    assert mine.started_at is not None and mine.restart_count == 0
    assert mine.image_update["update_available"] is False
    assert Image.objects.filter(engine=row, docker_id=mine.image_id).exists()
    assert Network.objects.filter(engine=row, name="bridge").exists()
    assert Service.objects.filter(engine=row).count() == len(snap.services)
    assert Task.objects.filter(engine=row).count() == len(snap.tasks)
    pk = mine.pk
    again = sync.resync(row.pk, backend.snapshot(engine))
    assert Container.objects.get(engine=row, name=f"{prefix}-a").pk == pk  # upserted, not recreated
    assert not [c for c in again["changes"] if c.name == f"{prefix}-a"]


def test_an_event_refresh_sees_a_container_stopped_and_removed_and_tells_receivers(
        env, engine, docker_client, ct_images, prefix, django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, engine, changes, **kwargs):
        seen.extend(changes)

    container_changed.connect(receiver)
    try:
        created = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-b", detach=True)
        row = make_engine(env)
        sync.resync(row.pk, backend.snapshot(engine))
        created.kill()
        engine_sync = sync.EngineSync(row.pk)
        with django_capture_on_commit_callbacks(execute=True):
            engine_sync.refresh_container(engine, created.id, "die")
        stored = Container.objects.get(engine=row, docker_id=created.id)
        assert stored.state == "exited" and stored.exit_code == 137 and stored.finished_at is not None
        change = [c for c in seen if c.docker_id == created.id][-1]
        assert (change.before["state"], change.after["state"], change.action) == ("running", "exited", "die")
        created.remove()
        with django_capture_on_commit_callbacks(execute=True):
            engine_sync.refresh_container(engine, created.id, "destroy")
        assert not Container.objects.filter(engine=row, docker_id=created.id).exists()
        assert seen[-1].after == {} and seen[-1].container_id is None
    finally:
        container_changed.disconnect(receiver)


def test_resync_of_the_engine_takes_few_queries(env, engine, django_assert_max_num_queries):
    row = make_engine(env)
    snap = backend.snapshot(engine)
    with django_assert_max_num_queries(40):
        started = time.monotonic()
        sync.resync(row.pk, snap)
    assert time.monotonic() - started < 5
