"""The engine script and the image builds are idempotent: a second run changes nothing."""

import time
from pathlib import Path

import pytest

from fleet import ensure_engine, ensure_images, image_tags

pytestmark = pytest.mark.fleet

PIDFILE = Path("/var/run/docker.pid")


def test_a_second_ensure_engine_leaves_the_running_engine_alone(docker_client):
    pid_before = PIDFILE.read_text() if PIDFILE.exists() else None
    started = time.monotonic()
    summary = ensure_engine()
    assert time.monotonic() - started < 5
    assert "swarm active" in summary
    assert (PIDFILE.read_text() if PIDFILE.exists() else None) == pid_before
    assert docker_client.ping()


def test_a_second_ensure_images_reuses_the_images(docker_client, fleet_images):
    ids_before = {image: docker_client.images.get(tag).id for image, tag in fleet_images.items()}
    started = time.monotonic()
    again = ensure_images(client=docker_client)
    elapsed = time.monotonic() - started
    assert again == fleet_images
    assert {image: docker_client.images.get(tag).id for image, tag in again.items()} == ids_before
    assert elapsed < 2, f"ensure_images took {elapsed:.1f}s with every image in place"


def test_stable_tags_point_at_the_current_recipe(docker_client, fleet_images):
    for image, (hash_tag, stable_tag) in image_tags().items():
        assert docker_client.images.get(stable_tag).id == docker_client.images.get(hash_tag).id, image
