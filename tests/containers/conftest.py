"""Fixtures of the container level's tests. The engine fixtures (docker_client, fleet_images) come
from fleet.pytest_plugin; prefix and ct_images (the fleet's app images under this session's own
tags) are the backend tests' own."""
import pytest

from tests.schedulers.conftest import ct_images, engine, local_engine_spec, prefix  # noqa: F401


@pytest.fixture
def env(db):
    from tests import factories

    return factories.environment("ct")
