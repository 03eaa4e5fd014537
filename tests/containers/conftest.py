"""Fixtures of the container level's tests. The engine fixtures (docker_client, fleet_images) come
from fleet.pytest_plugin; prefix and ct_images (the fleet's app images under this session's own
tags) are the backend tests' own."""
import sys

import pytest

from tests.browser.conftest import browser, page  # noqa: F401
from tests.schedulers.conftest import ct_images, engine, local_engine_spec, prefix  # noqa: F401


@pytest.fixture
def env(db):
    from tests import factories

    return factories.environment("ct")


@pytest.fixture
def watcher(live_env, live_logs):
    """`manage.py container_watcher` as a real process on the test database (engines read every 0.5 s)."""
    from ops_portal.core import heartbeat
    from tests.live import Process, wait_for

    process = Process("watcher", [sys.executable, "manage.py", "container_watcher", "--poll", "0.5"], live_env,
                      live_logs)
    wait_for(lambda: heartbeat.alive("watcher"), 60, "watcher heartbeat", process)
    yield process
    process.stop()
