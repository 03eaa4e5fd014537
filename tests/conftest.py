import pytest
from rest_framework.test import APIClient

from ops_portal.accounts.choices import Role
from tests import factories

pytest_plugins = ["tests.live", "fleet.pytest_plugin"]


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


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end sessions left by async threads and subprocesses."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
