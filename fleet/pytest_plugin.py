"""pytest plugin: session fixtures for the real Docker engine, the fleet images and a fleet.

Register with `pytest_plugins = ["fleet.pytest_plugin"]` (or `-p fleet.pytest_plugin`).

Fixtures (all session-scoped):
    docker_client   Docker SDK client, after scripts/ensure-docker.sh (engine up, Swarm active)
    fleet_images    {image: tag} after building whatever recipe changed
    fleet           a Fleet of $FLEET_SIZE hosts (default 20), removed at the end of the session
    fleet_kinds     a second, small Fleet: one systemd host and one pm2 host (more with
                    $FLEET_SYSTEMD / $FLEET_PM2), removed at the end of the session
    systemd_host    the first systemd host of fleet_kinds (a fleet.Host)
    pm2_host        the first pm2 host of fleet_kinds
    fleet_puppet    a Fleet of $FLEET_PUPPET hosts with Debian's puppet-agent (default 2), its own
                    run, removed at the end of the session
    puppet_host     the first host of fleet_puppet
    light_fleet     a LightFleet of $LIGHT_FLEET_SIZE light hosts (default 200): one asyncssh process
                    serving SSH on 127.0.0.1 ports (fleet/light.py); needs no Docker engine

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
    config.addinivalue_line("markers", "light: needs light SSH hosts (fleet/light.py, one asyncssh process)")


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
    """{"host"|"systemd"|"pm2"|"puppet"|"web:v1"|"web:v2"|"burner"|"crasher": tag}, all built."""
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


@pytest.fixture(scope="session")
def fleet_kinds(docker_client, fleet_images, pytestconfig):
    """A fleet of the other host kinds: $FLEET_SYSTEMD systemd hosts and $FLEET_PM2 pm2 hosts (1 each).

    Its own run (key, network), apart from `fleet`, so tests that walk every host of
    `fleet` keep seeing supervisord hosts only. Removed at the end of the session.
    """
    kinds = {"systemd": int(os.environ.get("FLEET_SYSTEMD", 1)), "pm2": int(os.environ.get("FLEET_PM2", 1))}
    cleanup_leftovers(docker_client)
    started = time.monotonic()
    try:
        running = Fleet.up(0, kinds=kinds, client=docker_client)
    except (FleetError, TimeoutError) as exc:
        unavailable(f"hosts of kinds {kinds} did not come up: {exc}")
    _report(pytestconfig, f"{kinds} hosts accept SSH {time.monotonic() - started:.1f}s after start "
                          f"(run {running.run_id})")
    try:
        yield running
    finally:
        running.down()


def _first_of(fleet, kind):
    hosts = fleet.of_kind(kind)
    if not hosts:
        unavailable(f"the fleet has no {kind} host (FLEET_{kind.upper()}=0)")
    return hosts[0]


@pytest.fixture(scope="session")
def systemd_host(fleet_kinds):
    """A host that boots systemd as PID 1 (sshd, supervisord as units); reach it through fleet_kinds."""
    return _first_of(fleet_kinds, "systemd")


@pytest.fixture(scope="session")
def pm2_host(fleet_kinds):
    """A host with Node.js and a PM2 daemon (plus supervisord); reach it through fleet_kinds."""
    return _first_of(fleet_kinds, "pm2")


@pytest.fixture(scope="session")
def fleet_puppet(docker_client, fleet_images, pytestconfig):
    """$FLEET_PUPPET hosts (default 2) of the puppet kind: the base host plus Debian's puppet-agent.

    A run of its own, apart from `fleet` (whose hosts have no Puppet: the host without it) and
    `fleet_kinds`. Removed at the end of the session.
    """
    kinds = {"puppet": int(os.environ.get("FLEET_PUPPET", 2))}
    cleanup_leftovers(docker_client)
    started = time.monotonic()
    try:
        running = Fleet.up(0, kinds=kinds, client=docker_client)
    except (FleetError, TimeoutError) as exc:
        unavailable(f"hosts of kinds {kinds} did not come up: {exc}")
    _report(pytestconfig, f"{kinds} hosts accept SSH {time.monotonic() - started:.1f}s after start "
                          f"(run {running.run_id})")
    try:
        yield running
    finally:
        running.down()


@pytest.fixture(scope="session")
def puppet_host(fleet_puppet):
    """A host with Debian's puppet-agent (puppet, facter; no agent configured); reach it through fleet_puppet."""
    return _first_of(fleet_puppet, "puppet")


DEFAULT_LIGHT_FLEET_SIZE = 200


@pytest.fixture(scope="session")
def light_fleet(pytestconfig):
    """$LIGHT_FLEET_SIZE light hosts (default 200) served by one asyncssh process on 127.0.0.1 ports,
    each with its own host key; stopped at the end of the session. No Docker engine needed."""
    try:
        import asyncssh  # noqa: F401
    except ImportError:
        unavailable("asyncssh is not installed (pip install -r requirements-dev.txt)")
    from .light import LightFleet

    size = int(os.environ.get("LIGHT_FLEET_SIZE", DEFAULT_LIGHT_FLEET_SIZE))
    started = time.monotonic()
    try:
        running = LightFleet.up(size)
    except (FleetError, OSError) as exc:
        unavailable(f"light fleet of {size} did not come up: {exc}")
    _report(pytestconfig, f"{size} light hosts listen {time.monotonic() - started:.1f}s after start "
                          f"({running.base_port}+, pid {running.pid})")
    try:
        yield running
    finally:
        running.down()
