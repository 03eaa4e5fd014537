"""Connecting to real sshd hosts: host key pinning, plain-words errors, the bounded pool."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from cryptography.hazmat.primitives import serialization

from schedulers.host import BackendError, HostKeyMismatch, SSHPool, connect, gather_facts, run_capture
from schedulers.sshkeys import fingerprint, load_private_key
from tests.keys import new_private_key
from tests.schedulers.conftest import ssh_target

pytestmark = pytest.mark.fleet


def test_trusts_an_unpinned_host_on_first_use_and_reports_its_key(fleet, fleet_key):
    host = fleet.hosts[0]
    unpinned = ssh_target(host, fleet_key, pinned_host_key="")
    conn = connect(unpinned)
    try:
        assert conn.trusted_on_first_use
        assert conn.host_key == host.host_key  # what the host printed in its own log at first start
    finally:
        conn.close()

    reported = []
    with SSHPool(2, on_host_key=lambda *args: reported.append(args)) as pool:
        result, out, _ = run_capture(pool, unpinned, "hostname")
    assert (result.ok, out) == (True, host.name)
    assert result.data["host_key"] == host.host_key
    assert reported == [(unpinned, host.host_key, conn.host_key_fingerprint)]

    pinned = connect(ssh_target(host, fleet_key, pinned_host_key=conn.host_key))
    try:
        assert not pinned.trusted_on_first_use and pinned.host_key == host.host_key
    finally:
        pinned.close()


def ssh_connections(ports):
    """This process's established TCP connections to the given ports on 127.0.0.1."""
    return sum(1 for c in psutil.Process().net_connections(kind="tcp")
               if c.raddr and c.raddr.port in ports and c.status == psutil.CONN_ESTABLISHED)


def test_refuses_a_host_whose_key_differs_from_the_pinned_one(fleet, fleet_key):
    first, second = fleet.hosts[0], fleet.hosts[1]
    wrong = ssh_target(first, fleet_key, pinned_host_key=second.host_key)
    with pytest.raises(HostKeyMismatch) as caught:
        connect(wrong)
    error = caught.value
    assert error.offered_key == first.host_key and error.expected_key == second.host_key
    assert str(error) == (f"host key for {first.name} changed: expected {error.expected_fingerprint}, "
                          f"got {error.offered_fingerprint}; an admin must accept the new key")
    with SSHPool(2) as pool, pytest.raises(HostKeyMismatch):
        run_capture(pool, wrong, "touch /tmp/should-never-run")
    assert fleet.exec(first.name, ["test", "-e", "/tmp/should-never-run"]).exit_code == 1
    assert ssh_connections({first.port}) == 0  # refused connections are closed, not leaked


def test_refuses_a_host_that_was_given_a_new_key(fleet, fleet_key):
    """A real key change (a reinstalled host): sshd re-reads its key per connection."""
    host = fleet.hosts[-1]
    key = "/etc/ssh/ssh_host_ed25519_key"
    fleet.exec(host.name, f"cp -p {key} /root/hostkey.bak && cp -p {key}.pub /root/hostkey.pub.bak && "
                          f"rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key}").check()
    try:
        new_key = " ".join(fleet.exec(host.name, f"cat {key}.pub").check().stdout.split()[:2])
        with pytest.raises(HostKeyMismatch, match=f"host key for {host.name} changed") as caught:
            connect(ssh_target(host, fleet_key))
        assert caught.value.offered_key == new_key
    finally:
        fleet.exec(host.name, f"mv /root/hostkey.bak {key} && mv /root/hostkey.pub.bak {key}.pub").check()
    connect(ssh_target(host, fleet_key)).close()


def test_a_wrong_private_key_fails_authentication_in_plain_words(fleet):
    host = fleet.hosts[0]
    stranger = new_private_key()
    with pytest.raises(BackendError) as caught:
        connect(ssh_target(host, stranger))
    assert str(caught.value) == (f"authentication failed for root@{host.name} "
                                 f"(key {fingerprint(load_private_key(stranger))})")


def test_logs_in_with_an_encrypted_key_and_its_passphrase(fleet, fleet_key):
    encrypted = serialization.load_ssh_private_key(fleet_key.encode(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"correct horse")).decode()
    host = fleet.hosts[0]
    connect(ssh_target(host, encrypted, passphrase="correct horse")).close()
    for wrong in ("", "wrong"):
        with pytest.raises(BackendError, match=f"the private key for root@{host.name} cannot be used"):
            connect(ssh_target(host, encrypted, passphrase=wrong))


def test_an_unanswering_host_times_out_in_plain_words(fleet, fleet_key):
    host = fleet.hosts[-1]
    fleet.pause_host(host.name)
    try:
        started = time.monotonic()
        with pytest.raises(BackendError, match=f"timed out connecting to 127.0.0.1:{host.port}"):
            connect(ssh_target(host, fleet_key, connect_timeout=1.5))
        assert time.monotonic() - started < 5
    finally:
        fleet.unpause_host(host.name)


def test_a_stopped_host_is_refused_quickly_even_after_its_connection_was_pooled(fleet, fleet_key):
    host = fleet.hosts[-1]
    target = ssh_target(host, fleet_key)
    with SSHPool(2) as pool:
        assert run_capture(pool, target, "true")[0].ok  # leaves an idle connection in the pool
        fleet.stop_host(host.name, timeout=1)
        try:
            started = time.monotonic()
            with pytest.raises(BackendError, match=r"^connection refused by 127\.0\.0\.1:\d+ "):
                run_capture(pool, target, "true")
            assert time.monotonic() - started < 3
        finally:
            fleet.start_host(host.name)
    assert fleet.host(host.name).port == host.port
    with SSHPool(1) as pool:
        assert run_capture(pool, target, "true")[0].ok


def test_a_pooled_connection_that_went_silent_is_replaced(fleet, targets):
    """The sshd serving the pooled connection is frozen: TCP stays up, nothing answers."""
    target = targets[7]
    with SSHPool(2, verify_after=0.0, verify_timeout=1.0) as pool:
        assert run_capture(pool, target, "true")[0].ok
        fleet.exec(target.name, "pkill -STOP -f '^sshd: root'").check()
        try:
            started = time.monotonic()
            result, out, _ = run_capture(pool, target, "echo fresh")
            assert (result.ok, out) == (True, "fresh")
            assert 1.0 <= time.monotonic() - started < 5
            assert pool.stats()["opened"] == 2
        finally:
            fleet.exec(target.name, "pkill -KILL -f '^sshd: root@notty'; pkill -CONT -f '^sshd: root'")


def test_facts_from_every_host_through_a_pool_of_eight(fleet, targets):
    """20 targets, 20 threads, 8 connections: never more than 8 SSH connections open at once."""
    ports = {t.port for t in targets}
    assert ssh_connections(ports) == 0
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], ssh_connections(ports))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with SSHPool(8) as pool, ThreadPoolExecutor(max_workers=len(targets)) as workers:
            facts = list(workers.map(lambda t: gather_facts(pool, t), targets))
            assert pool.stats()["opened"] == len(targets)
    finally:
        done.set()
        watcher.join()
    assert 1 <= peak[0] <= 8
    assert [f["hostname"] for f in facts] == [t.name for t in targets]


def test_a_connection_whose_sftp_channel_closed_opens_a_new_one(fleet, fleet_key):
    """Fabric keeps a connection's first SFTP client for good; kept warm across jobs, a connection
    may hold one whose channel the server closed since: it fails no file action ("Socket is
    closed"), a new client is opened on the same connection."""
    host = fleet.hosts[0]
    conn = connect(ssh_target(host, fleet_key))
    try:
        first = conn.sftp()
        assert first.normalize(".") == "/root"
        first.get_channel().close()  # as when sshd ends the SFTP subsystem
        second = conn.sftp()
        assert second is not first and second.normalize(".") == "/root"
        assert conn.sftp() is second  # kept while it works
    finally:
        conn.close()


def test_the_session_a_liveness_check_opened_carries_the_next_command(fleet, fleet_key):
    """Proving a kept connection alive opens a session; the command that follows runs on it
    instead of opening another (the check costs no round trip of its own), and a connection given
    back to a pool holds no unused session."""
    host = fleet.hosts[1]
    target = ssh_target(host, fleet_key)
    conn = connect(target)
    opened = []
    real_open = conn.transport.open_session
    conn.transport.open_session = lambda *args, **kwargs: opened.append(1) or real_open(*args, **kwargs)
    try:
        assert conn.verify(2.0) and len(opened) == 1
        assert conn.verify(2.0) and len(opened) == 1  # proven a moment ago: no second round trip
        result, out, _ = run_capture(conn, target, "echo first")
        assert (result.ok, out, len(opened)) == (True, "first", 1)
        result, out, _ = run_capture(conn, target, "echo second")
        assert (result.ok, out, len(opened)) == (True, "second", 2)
        assert conn.verify(2.0) and len(opened) == 3
        spare = conn._spare[0]
        conn.drop_spare()
        assert spare.closed and conn._spare is None
    finally:
        conn.close()
    with SSHPool(1, verify_after=0.0) as pool:
        assert run_capture(pool, target, "true")[0].ok
        kept = pool._idle[0][1]
        assert kept._spare is None  # given back without an open session
        assert run_capture(pool, target, "echo again")[1] == "again"  # verified, then run on that session
        assert pool._idle[0][1] is kept and kept._spare is None and pool.stats()["opened"] == 1
