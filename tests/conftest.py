import pytest
from rest_framework.test import APIClient

from ops_portal.accounts.choices import Role
from tests import factories

pytest_plugins = ["tests.live"]


@pytest.fixture
def api():
    """An API client; call .force_authenticate(user) or use `login_api`."""
    return APIClient()


@pytest.fixture
def envs(db):
    """Two environments: alpha (staging-like) and beta (production-like)."""
    return factories.environment("alpha"), factories.environment("beta", is_production=True)


@pytest.fixture
def make_user(db):
    """make_user(role, environment) -> a user bound to that role there (environment None: all)."""

    def make(role=None, environment=None, **fields):
        user = factories.user(**fields)
        if role is not None:
            factories.binding(role=role, user=user, environment=environment)
        return user

    return make


@pytest.fixture
def admin_all(make_user):
    return make_user(Role.ADMIN, None, username="root-admin")
