"""Fixtures of the autoscaling tests: the container level's engine and image fixtures, and the local
engine as an inventory row read into the database."""
import pytest

from tests.schedulers.conftest import ct_images, engine, local_engine_spec, prefix  # noqa: F401


@pytest.fixture
def env(db):
    from tests import factories

    return factories.environment("as")
