"""pytest plugin: session fixtures for the real Docker engine, the fleet images and a fleet.

Register with `pytest_plugins = ["fleet.pytest_plugin"]` (or `-p fleet.pytest_plugin`).

Fixtures (all session-scoped):
    docker_client   Docker SDK client, after scripts/ensure-docker.sh (engine up, Swarm active)
    fleet_images    {image: tag} after building whatever recipe changed
    fleet           a Fleet of $FLEET_SIZE hosts (default 20), removed at the end of the session

Under CI=true a missing engine or a failed build fails the run; elsewhere the tests that
need them are skipped with the reason.
"""

import os
import time

import pytest

from .engine import EngineError, ensure_engine, swarm_state
from .engine import docker_client as _docker_client
from .hosts import Fleet, FleetError, cleanup_leftovers
from .images import ImageBuildError, ensure_images

DEFAULT_FLEET_SIZE = 20


def pytest_configure(config):
    config.addinivalue_line("markers", "fleet: needs the real fleet (Docker engine, sshd hosts)")


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason):
    """Fail under CI (the fleet is required there), skip elsewhere."""
    if in_ci():
        pytest.fail(f"fleet unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"fleet unavailable: {reason}")


def _report(config, line):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"fleet: {line}")


@pytest.fixture(scope="session")
def docker_client(pytestconfig):
    """A Docker SDK client for the local engine, which answers and is in Swarm mode."""
    try:
        ensure_engine()
        client = _docker_client()
    except EngineError as exc:
        unavailable(str(exc))
    if swarm_state(client) != "active":
        unavailable(f"swarm is {swarm_state(client)!r}, not active")
    yield client
    client.close()


@pytest.fixture(scope="session")
def fleet_images(docker_client, pytestconfig):
    """{"host": tag, "web:v1": tag, "web:v2": tag, "burner": tag, "crasher": tag}, all built."""
    started = time.monotonic()
    try:
        tags = ensure_images(client=docker_client)
    except ImageBuildError as exc:
        unavailable(str(exc))
    _report(pytestconfig, f"images ready in {time.monotonic() - started:.1f}s")
    return tags


@pytest.fixture(scope="session")
def fleet(docker_client, fleet_images, pytestconfig):
    """A fleet of $FLEET_SIZE sshd hosts (default 20), up for the whole session.

    Leftovers of earlier crashed runs are removed first; the fleet is removed at the
    end of the session, whether its tests passed or not.
    """
    size = int(os.environ.get("FLEET_SIZE", DEFAULT_FLEET_SIZE))
    removed = cleanup_leftovers(docker_client)
    if removed:
        _report(pytestconfig, f"removed leftovers of crashed runs: {', '.join(removed)}")
    started = time.monotonic()
    try:
        running = Fleet.up(size, image=fleet_images["host"], client=docker_client)
    except (FleetError, TimeoutError) as exc:
        unavailable(f"fleet of {size} did not come up: {exc}")
    _report(pytestconfig, f"{size} hosts accept SSH {time.monotonic() - started:.1f}s after start "
                          f"(run {running.run_id})")
    try:
        yield running
    finally:
        running.down()
