"""Inventory changes close warm SSH connections in every worker process: the service announces on
commit (Redis pub/sub) what to close, and each process's listener closes it."""
import json
import time

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services as inventory
from ops_portal.inventory import warm
from schedulers.host import WARM, SSHTarget, credential_fingerprint
from tests import factories
from tests.helpers import act, person, wait_until
from tests.keys import ED25519_PRIVATE, new_private_key
from tests.schedulers.test_host_warm import KEY_A, KEY_B, FakeConn

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    warm.configure()
    WARM.clear()
    yield WARM
    WARM.clear()


@pytest.fixture
def announcements():
    """The announcements published on the channel while the test runs."""
    from ops_portal.core import redis as portal_redis

    pubsub = portal_redis.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(warm.channel())
    seen = []

    def read():
        # get_message() also answers None for the (ignored) subscription confirmation: read for a while.
        until = time.monotonic() + 0.5
        while time.monotonic() < until:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                seen.append(json.loads(message["data"]))
        return seen

    yield read
    pubsub.close()


def kept(host, credential, pinned=KEY_A):
    """A warm connection as a job would leave it for host."""
    target = SSHTarget(name=host.name, address=host.address, port=host.port, username=credential.username,
                       private_key=credential.private_key, passphrase=credential.passphrase, pinned_host_key=pinned)
    conn = FakeConn(target, opened_at=time.monotonic())  # a handshake now, after earlier tests' revocations
    assert WARM.put(conn)
    return conn


@pytest.fixture
def world():
    env = factories.environment()
    actor = act(person(env, Role.ADMIN))
    credential = factories.credential(env)
    host = factories.host(env, port=2201, credential=credential, host_key=KEY_A)
    other = factories.host(env, port=2202, credential=factories.credential(env, private_key=new_private_key()),
                           host_key=KEY_B)
    return env, actor, credential, host, other


def test_rotating_a_credential_closes_its_connections_after_commit(pool, world, announcements,
                                                                    django_capture_on_commit_callbacks):
    env, actor, credential, host, other = world
    mine, theirs = kept(host, credential), kept(other, other.credential, KEY_B)
    with django_capture_on_commit_callbacks(execute=True):
        inventory.rotate_credential(actor, credential, private_key=new_private_key())
        assert not mine.closed  # nothing before the commit
    assert mine.closed and not theirs.closed
    assert announcements() == [{"fingerprint": credential_fingerprint(ED25519_PRIVATE), "address": None,
                                "port": None}]


def test_a_refused_rotation_closes_nothing(pool, world, announcements, django_capture_on_commit_callbacks):
    env, actor, credential, host, other = world
    mine = kept(host, credential)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Exception):  # noqa: B017, PT011
        inventory.rotate_credential(actor, credential, private_key="not a key")
    assert not mine.closed and announcements() == []


def test_deleting_a_credential_closes_its_connections(pool, world, django_capture_on_commit_callbacks):
    env, actor, credential, host, other = world
    spare = factories.credential(env)  # the same key material as `credential` (the test key)
    conn = kept(host, spare)
    with django_capture_on_commit_callbacks(execute=True):
        inventory.delete_credential(actor, spare)
    assert conn.closed


@pytest.mark.parametrize("change", [{"host_key": KEY_B}, {"host_key": ""}, {"enabled": False}, {"port": 2299},
                                    {"username": "deploy"}])
def test_changing_how_a_host_is_reached_closes_its_connections(pool, world, announcements, change,
                                                               django_capture_on_commit_callbacks):
    env, actor, credential, host, other = world
    mine, theirs = kept(host, credential), kept(other, other.credential, KEY_B)
    with django_capture_on_commit_callbacks(execute=True):
        inventory.update_host(actor, host, **change)
    assert mine.closed and not theirs.closed
    assert announcements() == [{"fingerprint": None, "address": "127.0.0.1", "port": 2201}]


def test_other_host_edits_keep_the_connections(pool, world, announcements, django_capture_on_commit_callbacks):
    env, actor, credential, host, other = world
    mine = kept(host, credential)
    with django_capture_on_commit_callbacks(execute=True):
        inventory.update_host(actor, host, tags=["web"])
    assert not mine.closed and announcements() == []


def test_deleting_a_host_closes_its_connections(pool, world, django_capture_on_commit_callbacks):
    env, actor, credential, host, other = world
    mine = kept(host, credential)
    with django_capture_on_commit_callbacks(execute=True):
        inventory.delete_host(actor, host)
    assert mine.closed


def test_each_process_listens_and_closes_what_is_announced(pool, world):
    env, actor, credential, host, other = world
    listener = warm.start_listener()
    assert warm.start_listener() is listener  # one per process
    mine, theirs = kept(host, credential), kept(other, other.credential, KEY_B)
    from ops_portal.core import redis as portal_redis

    client = portal_redis.client()
    client.publish(warm.channel(), "not json")
    client.publish(warm.channel(), json.dumps({"fingerprint": 42}))
    time.sleep(0.3)
    assert not mine.closed and not theirs.closed  # malformed: ignored, the listener keeps going
    client.publish(warm.channel(), json.dumps({"address": "127.0.0.1", "port": 2202}))
    wait_until(lambda: theirs.closed, timeout=5, what="the announced host's connection to close")
    assert not mine.closed


def test_the_dashboard_shows_the_warm_connections_workers_report(pool, world, client):
    env, actor, credential, host, other = world
    from ops_portal.core import redis as portal_redis

    redis = portal_redis.client()
    for key in redis.scan_iter(match=portal_redis.key("ssh-warm", "stats", "*")):
        redis.delete(key)  # an earlier test's listener reported this process's pool
    client.force_login(person(env, Role.VIEWER))
    assert "warm SSH connection" not in client.get("/").content.decode()  # nobody reported
    kept(host, credential)
    kept(other, other.credential, KEY_B)
    warm.report()
    assert warm.totals() == {"processes": 1, "idle": 2, "reused": 0}
    page = client.get("/").content.decode()
    assert "2 warm SSH connections kept by 1 worker process" in page
