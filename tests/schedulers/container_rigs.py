"""Test rigs for the container backend: a proxy in front of the engine's socket that the test can
stop and start (the engine "goes away" without touching the shared dockerd), TLS certificates,
a fake engine that speaks an old API, and an SSH host whose `docker system dial-stdio` reaches the
local engine. Nothing here is used by the portal itself.
"""
import datetime
import http.server
import io
import ipaddress
import json
import os
import socket
import socketserver
import ssl
import tarfile
import tempfile
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Branches written before tests/helpers.py import the poller from here by its old name.
from tests.helpers import wait_until as wait_for  # noqa: F401

ENGINE_SOCKET = "/var/run/docker.sock"
PREFIX = "opsportal-ct"  # every object the container tests create is named opsportal-ct-<hex>-…


def unique_prefix():
    return f"{PREFIX}-{uuid.uuid4().hex[:8]}"


class SocketProxy:
    """Forward connections from a listener to the engine's unix socket; stop() drops them all.

    Listener: a unix socket at `unix_path`, or TCP on 127.0.0.1 (optionally TLS with
    `ssl_context`). After stop(), start() listens again at the same path or port.
    """

    def __init__(self, *, unix_path=None, ssl_context=None, upstream=ENGINE_SOCKET):
        self.unix_path, self.ssl_context, self.upstream = unix_path, ssl_context, upstream
        self.port = 0
        self._listener = None
        self._conns = []
        self._lock = threading.Lock()
        self.accepted = 0

    @property
    def url(self):
        return f"unix://{self.unix_path}" if self.unix_path else f"tcp://127.0.0.1:{self.port}"

    def start(self):
        if self.unix_path:
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(self.unix_path)
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            self.port = listener.getsockname()[1]
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self):
        """Close the listener and every open connection (both sides), as a dying engine would."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _kill(listener)
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            _kill(sock)

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        try:
            if self.ssl_context is not None:
                client.settimeout(10)
                client = self.ssl_context.wrap_socket(client, server_side=True)
                client.settimeout(None)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
        except (OSError, ssl.SSLError):
            _kill(client)
            return
        with self._lock:
            self._conns += [client, upstream]
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)


def _pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except (OSError, ssl.SSLError):
        pass
    finally:
        _kill(source)
        _kill(sink)


def _kill(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
    try:
        sock.close()
    except OSError:
        pass


# TLS -------------------------------------------------------------------------------------

def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert(subject, key, issuer, issuer_key, *, ca=False, server=False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([loopback]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def make_pki():
    """A CA, a server certificate for 127.0.0.1, a client certificate, and an unrelated CA and client."""
    def key():
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, other_key = key(), key()
    ca = _cert("opsportal test CA", ca_key, "opsportal test CA", ca_key, ca=True)
    other_ca = _cert("rogue CA", other_key, "rogue CA", other_key, ca=True)
    server_key, client_key, rogue_client_key = key(), key(), key()
    return {
        "ca": ca, "other_ca": other_ca,
        "server_cert": _cert("engine", server_key, "opsportal test CA", ca_key, server=True),
        "server_key": _pem_key(server_key),
        "client_cert": _cert("portal", client_key, "opsportal test CA", ca_key), "client_key": _pem_key(client_key),
        "rogue_client_cert": _cert("intruder", rogue_client_key, "rogue CA", other_key),
        "rogue_client_key": _pem_key(rogue_client_key),
    }


def server_context(pki):
    """A server-side context that demands a client certificate signed by the test CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cert, "w") as f:
            f.write(pki["server_cert"])
        with open(key, "w") as f:
            f.write(pki["server_key"])
        ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cadata=pki["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# A fake engine that speaks an old API ---------------------------------------------------------

class OldEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers /version like Docker 1.11 (API 1.23), below the SDK's minimum."""

    daemon_threads = True

    def __init__(self, path, api_version="1.23"):
        self.api_version = api_version

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805
                body = json.dumps({"Version": "1.11.2", "ApiVersion": self.api_version,
                                   "MinAPIVersion": "1.12", "Os": "linux"}).encode()
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)

            def address_string(handler):  # noqa: N805
                return "unix"

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(path, Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


# An SSH host whose docker CLI is a dial-stdio shim to the local engine ------------------------

DIAL_STDIO = r"""#!/usr/bin/python3
# Test shim: only `docker system dial-stdio`, which is all the SDK's SSH transport runs.
import os, socket, sys, threading
if sys.argv[1:] != ["system", "dial-stdio"]:
    sys.exit("this test host's docker only knows `system dial-stdio`")
engine = socket.socket(socket.AF_UNIX)
engine.connect("/srv/engine.sock")
def upstream():
    while data := os.read(0, 65536):
        engine.sendall(data)
    engine.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := engine.recv(65536):
    os.write(1, data)
"""


def ssh_keypair():
    """(private key as OpenSSH text, public key line), made in memory."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def start_ssh_engine_host(client, image, name):
    """Run a fleet host image with the engine's socket and the shim; return (container, port, host key, key)."""
    from fleet.hosts import Fleet

    private, public = ssh_keypair()
    container = client.containers.run(
        image, name=name, hostname="enginehost", detach=True, environment={"FLEET_AUTHORIZED_KEY": public},
        ports={"22/tcp": ("127.0.0.1", None)}, labels={"opsportal.test": "container-level"},
        volumes={ENGINE_SOCKET: {"bind": "/srv/engine.sock", "mode": "rw"}},
        tmpfs={"/run": "rw,nosuid,nodev,mode=755,size=16m"})
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        data = DIAL_STDIO.encode()
        info = tarfile.TarInfo("docker")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    container.put_archive("/usr/local/bin", archive.getvalue())
    host_key = Fleet._read_host_key(container)
    container.reload()
    port = int(container.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
    _wait_ssh(port)
    return container, port, host_key, private


def _wait_ssh(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"sshd on 127.0.0.1:{port} did not greet within {timeout}s")


def remove_prefixed(client, prefix, timeout=60):
    """Remove every service, container, network, volume and image tag whose name starts with prefix."""
    import docker

    api = client.api
    for service in api.services():
        if service["Spec"]["Name"].startswith(prefix):
            _quietly(api.remove_service, service["ID"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # service tasks' containers go away asynchronously
        left = [c for c in api.containers(all=True) if any(n.lstrip("/").startswith(prefix) for n in c["Names"])]
        for container in left:
            _quietly(api.remove_container, container["Id"], force=True, v=True)
        if not left:
            break
        time.sleep(0.3)
    for network in api.networks():
        if network["Name"].startswith(prefix):
            for _ in range(20):  # a swarm network stays "in use" until its tasks' endpoints are gone
                try:
                    api.remove_network(network["Id"])
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    time.sleep(0.5)
    for volume in (api.volumes().get("Volumes") or []):
        if volume["Name"].startswith(prefix):
            _quietly(api.remove_volume, volume["Name"], force=True)
    for image in api.images():
        for tag in image.get("RepoTags") or []:
            if tag.startswith(prefix):
                _quietly(api.remove_image, tag)


def _quietly(func, *args, **kwargs):
    import docker

    try:
        func(*args, **kwargs)
    except docker.errors.APIError:
        pass


def http_get(port, path="/", timeout=3.0):
    """(status, body) of GET http://127.0.0.1:port/path."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()
