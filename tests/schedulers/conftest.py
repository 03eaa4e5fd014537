"""Fixtures for the host backend's tests against the real fleet (sshd hosts in containers).

The `fleet` fixture comes from fleet.pytest_plugin (registered in tests/conftest.py).
"""
import uuid
from pathlib import Path

import pytest

from schedulers.host import SSHPool, SSHTarget


def ssh_target(host, private_key, **overrides):
    """An SSHTarget for a fleet host, pinned to the key the fleet read from the host's own log."""
    fields = {"name": host.name, "address": host.address, "port": host.port, "username": host.user,
              "private_key": private_key, "pinned_host_key": host.host_key, "connect_timeout": 10.0}
    fields.update(overrides)
    return SSHTarget(**fields)


@pytest.fixture(scope="session")
def fleet_key(fleet):
    return Path(fleet.key_path).read_text()


@pytest.fixture(scope="session")
def targets(fleet, fleet_key):
    return [ssh_target(host, fleet_key) for host in fleet.hosts]


@pytest.fixture
def target(targets):
    return targets[0]


@pytest.fixture
def pool():
    with SSHPool(8) as pool:
        yield pool


@pytest.fixture
def unique():
    """A fresh name for paths and markers, so tests never see each other's leftovers."""
    return f"opsportal-test-{uuid.uuid4().hex[:10]}"


class Lines:
    """An on_line callback that keeps (seconds since start, stream, text)."""

    def __init__(self, clock):
        self.clock = clock
        self.started = clock()
        self.seen = []

    def __call__(self, stream, text):
        self.seen.append((self.clock() - self.started, stream, text))

    def texts(self, stream=None):
        return [text for _, s, text in self.seen if stream in (None, s)]


@pytest.fixture
def lines():
    import time

    return Lines(time.monotonic)


# The container level ----------------------------------------------------------------------

@pytest.fixture(scope="session")
def local_engine_spec(docker_client):
    """The local engine (ensured up, in Swarm mode, by the fleet plugin's docker_client)."""
    from schedulers.container import EngineSpec

    return EngineSpec("local", "unix:///var/run/docker.sock")


@pytest.fixture(scope="session")
def engine(local_engine_spec):
    """An EngineClient from schedulers.container.connect, for the whole session."""
    from schedulers.container import connect

    client = connect(local_engine_spec, timeout=60)
    yield client
    client.close()


@pytest.fixture
def prefix(docker_client):
    """A unique name prefix; every service, container, network, volume and image tag named with it
    is removed at teardown, whatever the test left."""
    from tests.schedulers.container_rigs import remove_prefixed, unique_prefix

    name = unique_prefix()
    yield name
    remove_prefixed(docker_client, name)


@pytest.fixture(scope="session")
def ct_images(docker_client, fleet_images):
    """The fleet's app images under tags of this session's own ({"web:v1": "opsportal-ct-…-web:v1", …}).

    Other worktrees build the same images from other recipes on the shared engine, and a build
    untags older recipes' tags; tags of our own keep the images ours until the session ends.
    """
    from tests.schedulers.container_rigs import unique_prefix

    session = unique_prefix()
    pinned = {}
    for key, tag in fleet_images.items():
        if key == "host":
            pinned[key] = tag
            continue
        name, _, version = key.partition(":")
        pinned[key] = f"{session}-{name}:{version or 'latest'}"
        docker_client.images.get(tag).tag(pinned[key])
    yield pinned
    for key, tag in pinned.items():
        if key != "host":
            try:
                docker_client.images.remove(tag)
            except Exception:  # still used by a container a failed test left; the tag goes with it later
                pass
