"""The warm pool (schedulers/hostlib/warm.py) with fake connections: bounds, LRU, idle expiry, the
keys that must never match, dead connections, concurrent checkouts, and SSHPool's use of it."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from schedulers.hostlib.connect import SSHPool, SSHTarget
from schedulers.hostlib.warm import WarmPool, credential_fingerprint

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeTransport:
    def __init__(self):
        self.active = True

    def is_active(self):
        return self.active


class FakeClient:
    def close(self):
        pass


class FakeConn:
    """What the pools use of a HostConnection: target, host_key, transport, verify, close."""

    def __init__(self, target, host_key=None, opened_at=0.0):
        self.target = target
        self.host_key = host_key if host_key is not None else target.pinned_host_key
        self.transport = FakeTransport()
        self.client = FakeClient()
        self.opened_at = opened_at
        self.closed = False
        self.answers = True
        self.trusted_on_first_use = not target.pinned_host_key
        self.reused = False

    @property
    def is_connected(self):
        return self.transport.active

    def verify(self, timeout=5.0):
        return self.answers

    def close(self):
        self.closed = True
        self.transport.active = False


def target(name="web1", port=2201, key="PRIVATE-A", pinned=KEY_A, user="root"):
    return SSHTarget(name=name, address="127.0.0.1", port=port, username=user, private_key=key,
                     pinned_host_key=pinned)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def warm(clock):
    pool = WarmPool(8, 300, clock=clock)
    yield pool
    pool.clear()


def test_a_connection_given_back_is_reused_for_the_same_target(warm):
    conn = FakeConn(target())
    assert warm.put(conn)
    again = warm.checkout(target(name="renamed-in-inventory"))
    assert again is conn and again.reused and not again.closed
    assert again.target.name == "renamed-in-inventory"
    assert warm.checkout(target()) is None  # taken: one holder at a time
    assert warm.stats()["reused"] == 1


@pytest.mark.parametrize("other", [
    target(key="PRIVATE-B"),  # rotated credential
    target(pinned=KEY_B),  # re-pinned host key
    target(pinned=""),  # nothing pinned: a fresh handshake must see (and report) the key
    target(port=2202),
    target(user="deploy"),
])
def test_never_serves_another_credential_host_key_endpoint_or_user(warm, other):
    conn = FakeConn(target())
    warm.put(conn)
    assert warm.checkout(other) is None
    assert warm.checkout(target()) is conn


def test_the_fingerprint_is_a_hash_of_the_key_material_never_the_key():
    fp = credential_fingerprint("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n", "pass")
    assert "secret" not in fp and "pass" not in fp
    assert fp == credential_fingerprint("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n", "pass")
    assert fp != credential_fingerprint("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n", "other")
    assert "secret" not in repr(target(key="secret"))


def test_a_connection_trusted_on_first_use_is_reused_only_once_its_key_is_pinned(warm):
    conn = FakeConn(target(pinned=""), host_key=KEY_A)
    assert warm.put(conn)
    assert warm.checkout(target(pinned="")) is None  # still unpinned: never reused
    assert warm.checkout(target(pinned=KEY_B)) is None  # another key got pinned: never
    again = warm.checkout(target(pinned=KEY_A + " comment"))  # the key it saw, now pinned
    assert again is conn and not again.trusted_on_first_use


def test_holds_at_most_max_and_closes_the_least_recently_given_back(clock):
    warm = WarmPool(2, 300, clock=clock)
    conns = [FakeConn(target(name=f"h{i}", port=2200 + i)) for i in range(3)]
    for conn in conns:
        clock.now += 1
        warm.put(conn)
    assert conns[0].closed and not conns[1].closed and not conns[2].closed
    assert warm.stats()["idle"] == 2 and warm.stats()["evicted"] == 1
    assert warm.checkout(target(port=2200)) is None
    assert warm.checkout(target(port=2201)) is conns[1]


def test_closes_connections_idle_longer_than_the_bound(warm, clock):
    old, new = FakeConn(target(port=2201)), FakeConn(target(port=2202))
    warm.put(old)
    clock.now += 200
    warm.put(new)
    clock.now += 101  # old idled 301s, new 101s
    assert warm.checkout(target(port=2201)) is None and old.closed
    assert warm.checkout(target(port=2202)) is new
    assert warm.stats()["expired"] == 1


def test_expiry_takes_every_stale_connection_and_no_fresh_one(clock):
    """Expiry reads the idle connections oldest first and stops at the first fresh one; one given
    back again counts from its latest return."""
    warm = WarmPool(16, 100, clock=clock)
    conns = [FakeConn(target(name=f"h{i}", port=2300 + i)) for i in range(8)]
    for conn in conns:
        warm.put(conn)
        clock.now += 10  # h0 given back at 0, h7 at 70
    again = warm.checkout(target(port=2300))
    warm.put(again)  # h0 given back again at 80: now the newest
    clock.now += 45  # 125: h1..h2 (10, 20) are stale, h3 (30) is not yet, h0 (80) is fresh
    assert warm.checkout(target(port=2303)) is conns[3]
    assert [c.closed for c in conns] == [False, True, True, False, False, False, False, False]
    assert warm.stats()["expired"] == 2
    assert warm.checkout(target(port=2300)) is conns[0]


def test_the_reaper_closes_idle_connections_without_any_call(clock):
    warm = WarmPool(4, 1, clock=clock)
    conn = FakeConn(target())
    warm.put(conn)
    clock.now += 2
    warm._wake.set()
    warm._reaper.join(5)
    assert conn.closed and warm.stats()["idle"] == 0


def test_zero_disables_and_closes_what_is_held(warm):
    conn = FakeConn(target())
    warm.put(conn)
    warm.configure(0, 300)
    assert conn.closed and not warm.enabled
    other = FakeConn(target())
    assert not warm.put(other) and other.closed
    assert warm.checkout(target()) is None


def test_a_dead_connection_is_dropped_and_the_next_one_used(warm, clock):
    dead, silent, good = FakeConn(target()), FakeConn(target()), FakeConn(target())
    warm.put(good)
    warm.put(silent)
    warm.put(dead)
    dead.transport.active = False  # the host closed it
    silent.answers = False  # looks alive, does not answer a session round trip
    clock.now += 20  # idle past verify_after: checked before reuse
    assert warm.checkout(target()) is good
    assert dead.closed and silent.closed and warm.stats()["dead"] == 2


def test_a_connection_put_back_dead_is_closed_not_kept(warm):
    conn = FakeConn(target())
    conn.transport.active = False
    assert not warm.put(conn) and warm.stats()["idle"] == 0


def test_revoking_a_fingerprint_closes_its_connections_now_and_later(warm, clock):
    a1, a2 = FakeConn(target(port=2201)), FakeConn(target(port=2202))
    b = FakeConn(target(port=2203, key="PRIVATE-B"))
    in_use = FakeConn(target(port=2204), opened_at=clock.now)  # held by a running job
    for conn in (a1, a2, b):
        warm.put(conn)
    clock.now += 1
    assert warm.revoke(fingerprint=credential_fingerprint("PRIVATE-A")) == 2
    assert a1.closed and a2.closed and not b.closed
    assert not warm.put(in_use) and in_use.closed  # opened before the revocation: not kept
    clock.now += 1
    fresh = FakeConn(target(port=2204), opened_at=clock.now)  # the new handshake after the change
    assert warm.put(fresh)


def test_revoking_an_endpoint_closes_every_connection_to_it(warm):
    one, other = FakeConn(target(port=2201)), FakeConn(target(port=2202))
    warm.put(one)
    warm.put(other)
    assert warm.revoke(address="127.0.0.1", port=2201) == 1
    assert one.closed and not other.closed
    with pytest.raises(ValueError):
        warm.revoke()


def test_concurrent_checkouts_hand_each_connection_to_one_thread(warm):
    conns = [FakeConn(target()) for _ in range(5)]
    for conn in conns:
        warm.put(conn)
    start = threading.Barrier(20)

    def take(_):
        start.wait()
        return warm.checkout(target())

    with ThreadPoolExecutor(20) as threads:
        got = [conn for conn in threads.map(take, range(20)) if conn is not None]
    assert sorted(map(id, got)) == sorted(map(id, conns))


def test_a_job_pool_takes_warm_connections_and_gives_healthy_ones_back(warm):
    handshakes = []

    def connect(t):
        handshakes.append(t.name)
        return FakeConn(t)

    with SSHPool(4, warm=warm, connect=connect) as pool:
        with pool.connection(target(port=2201)):
            pass
        with pytest.raises(RuntimeError), pool.connection(target(port=2202)):
            raise RuntimeError("the command broke the connection")
    assert handshakes == ["web1", "web1"] and warm.stats()["idle"] == 1

    with SSHPool(4, warm=warm, connect=connect) as pool:
        with pool.connection(target(port=2201)) as conn:
            assert conn.reused
        with pool.connection(target(port=2202)) as conn:
            assert not conn.reused
        assert pool.stats()["reused"] == 1 and pool.stats()["opened"] == 1
    assert len(handshakes) == 3 and warm.stats()["idle"] == 2


def test_a_canceled_job_gives_nothing_back(warm):
    canceled = threading.Event()
    with SSHPool(4, warm=warm, connect=FakeConn, reusable=lambda: not canceled.is_set()) as pool:
        with pool.connection(target()) as conn:
            canceled.set()
    assert conn.closed and warm.stats()["idle"] == 0


def test_a_disabled_warm_pool_is_not_used(clock):
    warm = WarmPool(0, 300, clock=clock)
    with SSHPool(2, warm=warm, connect=FakeConn) as pool, pool.connection(target()) as conn:
        pass
    assert conn.closed and pool.warm is None


def test_a_forked_child_does_not_inherit_the_parents_connections(warm):
    import os

    conn = FakeConn(target())
    warm.put(conn)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new worker process must start empty and not touch the parent's sockets
        try:
            os.write(write, b"%d %d" % (warm.stats()["idle"], warm.checkout(target()) is None))
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 64)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"0 1"
    assert not conn.closed and warm.checkout(target()) is conn  # the parent keeps its own
