"""Helpers every test folder shares: people and their actors, waiting for a condition, signing in.

Objects of one model come from tests/factories.py; fixtures shared by all folders are in
tests/conftest.py; live processes (worker, beat, web) in tests/live.py.
"""
import time
from pathlib import Path

import pytest
from django.core.cache import cache

from ops_portal.accounts import services as accounts
from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.inventory import services as inventory
from tests import factories

ROOT = Path(__file__).resolve().parent.parent  # the checkout


def person(environment, role, username=None, **fields):
    """A new user bound to `role` in `environment` (None: in every environment)."""
    user = factories.user(username, **fields)
    factories.binding(role=role, user=user, environment=environment)
    return user


def act(user, source="api"):
    """The actor a service call gets for `user` (from the API unless `source` says otherwise)."""
    return Actor.for_user(user, source=source)


def operator(environment):
    """The actor of a new operator of `environment`."""
    return act(person(environment, Role.OPERATOR))


def api_token(user, name="test"):
    """A new API token of `user`, made through the service: (the row, the key shown once)."""
    return accounts.create_token(act(user), name=name)


def fleet_credential(actor, environment, fleet):
    """The fleet's root key as a credential of `environment`, made through the inventory service."""
    return inventory.create_credential(actor, name="fleet-key", environment=environment, username="root",
                                       private_key=Path(fleet.key_path).read_text())


def fleet_host(actor, environment, credential, host, **fields):
    """A fleet host (fleet.hosts.Host) in the inventory, pinned to the host key the fleet read from its log."""
    return inventory.create_host(actor, name=host.name, address=host.address, port=host.port, username=host.user,
                                 environment=environment, credential=credential, host_key=host.host_key, **fields)


def missing(message):
    """A real part the test needs is missing: fail under CI, where everything must run; skip elsewhere."""
    # Imported here: tests/conftest.py imports this module before pytest registers (and rewrites) the plugin.
    from fleet.pytest_plugin import in_ci

    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def wait_until(predicate, timeout=30.0, what="condition", *, interval=0.1):
    """Return predicate()'s first truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {value!r})")
        time.sleep(interval)


def sign_in(client, username, password=factories.PASSWORD, address="10.0.0.1", *, path="/login/", forwarded=None):
    """Post the sign-in form (at `path`) as a browser at `address` would, behind a proxy when
    `forwarded` gives an X-Forwarded-For; returns the response."""
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(path, {"username": username, "password": password}, **extra)


def forget_failed_sign_ins():
    """Clear the sign-in throttle's counts; only this run's keys, as other runs share the Redis server."""
    client = cache._cache.get_client()
    for key in client.scan_iter(match=cache.make_key("login-fail:*")):
        client.delete(key)
