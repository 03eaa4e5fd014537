import logging
import time

import pytest
from django.core.management.base import CommandError
from django.db import OperationalError
from django.test import TransactionTestCase
from rest_framework.test import APIClient

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.inventory.choices import Transport
from tests import factories
from tests.helpers import forget_failed_sign_ins, person

pytest_plugins = ["tests.live", "fleet.pytest_plugin"]

log = logging.getLogger(__name__)
_flush = TransactionTestCase._fixture_teardown


def _fixture_teardown_retrying(self, attempts=5):
    """A transactional test ends with one TRUNCATE of every table. A live worker still finishing a
    job (its last event batch, a refresh) holds row locks on some of them and may wait for one the
    TRUNCATE already holds: PostgreSQL then ends one side as a deadlock. When the flush is that side,
    take it again once the worker's transaction is over instead of failing this test and the next
    (whose rows would collide with the ones left behind): CI of 2026-12-02, tests/programs/test_fleet.py."""
    for attempt in range(1, attempts + 1):
        try:
            return _flush(self)
        except CommandError as exc:
            if attempt == attempts or not isinstance(exc.__cause__, OperationalError):
                raise
            log.warning("flush after a transactional test failed (%s); again in 1 s", exc.__cause__)
            time.sleep(1)


TransactionTestCase._fixture_teardown = _fixture_teardown_retrying


@pytest.fixture
def api():
    """An API client; call .force_authenticate(user) or use `login_api`."""
    return APIClient()


@pytest.fixture
def env(db):
    """One environment: alpha (staging-like)."""
    return factories.environment("alpha")


@pytest.fixture
def envs(env):
    """Two environments: alpha (the `env` fixture's) and beta (production-like)."""
    return env, factories.environment("beta", is_production=True)


@pytest.fixture
def prod(db):
    """A production environment with one local host, web-1, where all work needs an approval."""
    env = factories.environment("production", is_production=True)
    factories.host(env, "web-1", transport=Transport.LOCAL)
    ApprovalPolicy.objects.create(name="production-always", environment=env, all_work=True)
    return env


@pytest.fixture
def make_user(db):
    """make_user(role, environment) -> a user bound to that role there (environment None: all)."""

    def make(role=None, environment=None, **fields):
        return factories.user(**fields) if role is None else person(environment, role, **fields)

    return make


@pytest.fixture
def admin_all(make_user):
    return make_user(Role.ADMIN, None, username="root-admin")


@pytest.fixture
def fresh_sign_in_throttle():
    """Forget the failed sign-ins earlier tests made (the throttle counts them in Redis), and the
    test's own after it, so a lockout it caused does not turn away later tests' sign-ins."""
    forget_failed_sign_ins()
    yield
    forget_failed_sign_ins()


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
