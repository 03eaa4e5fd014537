"""Fixtures of the projects tests: a VAR_DIR of the test's own (checkouts and snapshots live there)
and the people of environment alpha."""
import pytest

from ops_portal.accounts.choices import Role
from tests import factories
from tests.helpers import act, person


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


@pytest.fixture
def world(db):
    env = factories.environment("alpha")
    return {"env": env, "admin_all": act(person(None, Role.ADMIN)), "admin": act(person(env, Role.ADMIN)),
            "operator": act(person(env, Role.OPERATOR))}
