"""Reaching Docker engines: unix socket, TCP with TLS (through a TLS proxy in front of the real
engine), SSH with a pinned host key; plain-words states for engines that are down or too old."""
import os
import pickle
import stat

import pytest

from schedulers.container import EngineError, EngineSpec, check, connect, probe
from tests.schedulers.container_rigs import (
    OldEngine,
    SocketProxy,
    make_pki,
    server_context,
    ssh_keypair,
    start_ssh_engine_host,
)

pytestmark = pytest.mark.fleet


def test_probes_the_local_engine_over_its_unix_socket(local_engine_spec, docker_client):
    client = connect(local_engine_spec)
    try:
        info = probe(client)
    finally:
        client.close()
    server = docker_client.version()
    assert (info.version, info.api_version) == (server["Version"], server["ApiVersion"])
    assert info.negotiated_api_version == server["ApiVersion"]  # 1.41 here, below the SDK's default
    assert info.swarm_state == "active" and info.swarm_role == "manager"
    assert info.node_id == docker_client.info()["Swarm"]["NodeID"]
    assert info.os_type == "linux" and info.health == "healthy"
    status = check(local_engine_spec)
    assert status.state == "up" and "swarm manager" in status.message


@pytest.mark.parametrize(("url", "state", "words"), [
    ("unix:///nonexistent/docker.sock", "down", "no Docker socket at /nonexistent/docker.sock"),
    ("tcp://127.0.0.1:1", "down", "connection refused at tcp://127.0.0.1:1"),
    ("http://127.0.0.1:2375", "misconfigured", "must start with unix://, ssh:// or tcp://"),
    ("ssh://127.0.0.1:22", "misconfigured", "is not ssh://user@host[:port]"),
])
def test_reports_an_unusable_engine_in_plain_words(url, state, words):
    status = check(EngineSpec("e1", url, ssh_host_key="x", ssh_private_key="x"), timeout=3)
    assert status.state == state and words in status.message and status.info is None


def test_refuses_plain_tcp_unless_allowed_explicitly():
    spec = EngineSpec("plain", "tcp://127.0.0.1:1")
    assert spec.uses_tls  # no certificates given: TLS with the system's CAs, never plain
    assert not EngineSpec("plain", "tcp://127.0.0.1:1", allow_plain_tcp=True).uses_tls
    with pytest.raises(EngineError) as err:
        connect(EngineSpec("plain", "tcp://127.0.0.1:1", tls_verify=False))
    assert err.value.reason == "config" and "protects nothing" in str(err.value)


def test_an_engine_older_than_the_sdk_minimum_is_unsupported(tmp_path):
    server = OldEngine(str(tmp_path / "old.sock"), api_version="1.23")
    try:
        status = check(EngineSpec("old", f"unix://{tmp_path}/old.sock"))
    finally:
        server.shutdown()
        server.server_close()
    assert status.state == "unsupported" and status.reason == "api_too_old"
    assert "speaks Docker API 1.23" in status.message and "needs API 1.24 or newer" in status.message


def test_engine_errors_survive_pickling():
    error = EngineError("e1", "refused", "engine e1: connection refused")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.engine, copy.reason, str(copy), copy.state) == ("e1", "refused", str(error), "down")


# TLS ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
def tls_proxy(pki, docker_client):
    proxy = SocketProxy(ssl_context=server_context(pki)).start()
    yield proxy
    proxy.stop()


def test_connects_over_tls_with_a_client_certificate_kept_off_disk_and_removed(pki, tls_proxy, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # must not replace our CA
    spec = EngineSpec("tls", tls_proxy.url, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"])
    assert pki["client_key"] not in repr(spec) and "BEGIN" not in repr(spec)
    client = connect(spec, timeout=10)
    material = client.tls_material
    try:
        assert probe(client).swarm_role == "manager"
        assert stat.S_IMODE(os.stat(material.path).st_mode) == 0o700
        for name in os.listdir(material.path):
            assert stat.S_IMODE(os.stat(os.path.join(material.path, name)).st_mode) == 0o600
        if os.access("/dev/shm", os.W_OK):
            assert material.path.startswith("/dev/shm/")
    finally:
        client.close()
    assert not os.path.exists(material.path)


def test_refuses_an_engine_whose_certificate_another_ca_signed(pki, tls_proxy):
    status = check(EngineSpec("tls", tls_proxy.url, tls_ca=pki["other_ca"], tls_cert=pki["client_cert"],
                              tls_key=pki["client_key"]), timeout=5)
    assert status.state == "refused" and status.reason == "tls" and "not trusted" in status.message


@pytest.mark.parametrize("client_cert", ["rogue", "none"])
def test_the_engine_refuses_a_client_without_a_certificate_from_its_ca(pki, tls_proxy, client_cert):
    fields = {"tls_ca": pki["ca"]}
    if client_cert == "rogue":
        fields.update(tls_cert=pki["rogue_client_cert"], tls_key=pki["rogue_client_key"])
    status = check(EngineSpec("tls", tls_proxy.url, **fields), timeout=5)
    assert status.state == "refused" and status.reason == "tls" and "TLS handshake" in status.message


def test_checks_tls_material_before_connecting(pki):
    mismatched = EngineSpec("tls", "tcp://127.0.0.1:1", tls_ca=pki["ca"], tls_cert=pki["client_cert"],
                            tls_key=pki["rogue_client_key"])
    with pytest.raises(EngineError, match="does not belong to the client certificate"):
        connect(mismatched)
    with pytest.raises(EngineError, match="not PEM-encoded X.509"):
        connect(EngineSpec("tls", "tcp://127.0.0.1:1", tls_ca="garbage"))
    with pytest.raises(EngineError, match="give both the client certificate and its private key"):
        connect(EngineSpec("tls", "tcp://127.0.0.1:1", tls_cert=pki["client_cert"]))


# SSH ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ssh_engine_host(docker_client, fleet_images):
    from tests.schedulers.container_rigs import remove_prefixed, unique_prefix

    name = unique_prefix()
    container, port, host_key, private_key = start_ssh_engine_host(docker_client, fleet_images["host"],
                                                                   f"{name}-enginehost")
    yield port, host_key, private_key
    container.remove(force=True)
    remove_prefixed(docker_client, name)


def test_connects_over_ssh_with_the_pinned_host_key_and_a_key_from_memory(ssh_engine_host, docker_client,
                                                                          tmp_path, monkeypatch):
    port, host_key, private_key = ssh_engine_host
    # docker-py's own adapter would read these: a ProxyCommand that fails and a known_hosts without
    # the host. Ours must use neither, nor write anything there.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  ProxyCommand false\n  IdentityFile /nonexistent\n")
    (home / ".ssh" / "known_hosts").write_text("")
    monkeypatch.setenv("HOME", str(home))
    spec = EngineSpec("ssh", f"ssh://root@127.0.0.1:{port}", ssh_private_key=private_key, ssh_host_key=host_key)
    client = connect(spec, timeout=10)
    try:
        info = probe(client)
        names = {c.name for c in client.containers.list()}
    finally:
        client.close()
    assert info.node_id == docker_client.info()["Swarm"]["NodeID"]  # the same engine, reached over SSH
    assert any(name.endswith("-enginehost") for name in names)
    assert (home / ".ssh" / "known_hosts").read_text() == ""
    assert sorted(os.listdir(home / ".ssh")) == ["config", "known_hosts"]


def test_refuses_an_ssh_host_offering_another_key(ssh_engine_host):
    port, _, private_key = ssh_engine_host
    other = ssh_keypair()[1]
    status = check(EngineSpec("ssh", f"ssh://root@127.0.0.1:{port}", ssh_private_key=private_key,
                              ssh_host_key=other), timeout=10)
    assert status.state == "refused" and status.reason == "host_key" and "host key for ssh changed" in status.message


def test_reports_an_ssh_key_the_host_does_not_accept(ssh_engine_host):
    port, host_key, _ = ssh_engine_host
    status = check(EngineSpec("ssh", f"ssh://root@127.0.0.1:{port}", ssh_private_key=ssh_keypair()[0],
                              ssh_host_key=host_key), timeout=10)
    assert status.state == "refused" and status.reason == "auth" and "authentication failed" in status.message


def test_an_ssh_engine_needs_a_pinned_host_key():
    with pytest.raises(EngineError, match="needs the pinned host key"):
        connect(EngineSpec("ssh", "ssh://root@127.0.0.1:22", ssh_private_key=ssh_keypair()[0]))


def test_events_and_logs_stream_over_ssh_and_stop_on_cancel(ssh_engine_host, docker_client, fleet_images):
    import threading
    import time

    from schedulers.base import CancelToken
    from schedulers.container import EventWatcher, containers

    port, host_key, private_key = ssh_engine_host
    spec = EngineSpec("ssh", f"ssh://root@127.0.0.1:{port}", ssh_private_key=private_key, ssh_host_key=host_key)
    seen = []
    watcher = EventWatcher(spec, lambda event, client: seen.append((time.monotonic(), event)),
                           lambda client, reason: None, CancelToken(), ping_every=1).start()
    client = connect(spec, timeout=10)
    container = None
    try:
        deadline = time.monotonic() + 10
        while not watcher.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        container = docker_client.containers.run(fleet_images["web:v1"], detach=True,
                                                 labels={"opsportal.test": "container-level"},
                                                 entrypoint=["sh", "-c", "while :; do echo tick; sleep 0.2; done"])
        while not [e for t, e in seen if e.id == container.id and e.action == "start"] and \
                time.monotonic() < started + 2:
            time.sleep(0.02)
        assert [e for t, e in seen if e.id == container.id and e.action == "start"]

        cancel, lines = CancelToken(), []
        follower = threading.Thread(target=containers.logs, args=(client, container.id),
                                    kwargs={"follow": True, "tail": 0, "cancel": cancel,
                                            "on_line": lambda s, t: lines.append(t)})
        follower.start()
        time.sleep(1)
        cancel.cancel()
        follower.join(5)
        assert not follower.is_alive() and "tick" in lines
    finally:
        watcher.stop()
        watcher.join(5)
        client.close()
        if container is not None:
            container.remove(force=True)
    assert not watcher._thread.is_alive()
