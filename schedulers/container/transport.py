"""How bytes reach an engine: the pinned SSH adapter, TLS material on a private tmpfs, closing streams.

SSH: docker-py's SSHHTTPAdapter (paramiko, `use_ssh_client=False`) reads ~/.ssh/config, loads
the system known_hosts and, without an identity file, tries every key it finds and the agent.
`PinnedSSHAdapter` replaces only `_create_paramiko_client`: no config file, no known_hosts
(neither read nor written), the engine's pinned host key as the one known key (a mismatch
raises HostKeyMismatch before anything is sent, as in schedulers/hostlib), and the given
private key from memory. It also reconnects when the transport died, which the stock adapter
does only when there never was one.

TLS: Python's ssl module loads a client certificate and key only from files, and requests
loads them again for every new connection, so they must exist while the client lives. They
go to a 0700 directory (0600 files) on /dev/shm when it is writable (memory, never the disk),
and are removed when the client is closed or garbage-collected, or at interpreter exit.
"""
import os
import shutil
import socket
import tempfile
import weakref

import paramiko
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from docker.transport.sshconn import SSHHTTPAdapter

from ..hostlib.connect import SSHTarget, _PinningPolicy

KEEPALIVE = 15  # seconds; lets a dead SSH peer show up as an inactive transport


class PinnedSSHAdapter(SSHHTTPAdapter):
    """docker-py's paramiko SSH adapter, pinned to one host key and one private key held in memory."""

    def __init__(self, url, *, target: SSHTarget, pkey: paramiko.PKey, host_key: paramiko.PKey, timeout, **kwargs):
        self._target, self._pkey, self._host_key = target, pkey, host_key
        super().__init__(url, timeout=timeout, shell_out=False, **kwargs)

    def _create_paramiko_client(self, base_url):
        target = self._target
        client = paramiko.SSHClient()
        name = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
        # paramiko then asks the server for this key type first and compares the key itself.
        client.get_host_keys().add(name, self._host_key.get_name(), self._host_key)
        client.set_missing_host_key_policy(_PinningPolicy(target, self._host_key))
        self.ssh_client = client
        timeout = float(target.connect_timeout)
        self.ssh_params = {
            "hostname": target.address, "port": target.port, "username": target.username,
            "pkey": self._pkey, "look_for_keys": False, "allow_agent": False,
            "timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout,
        }

    def _connect(self):
        self.ssh_client.connect(**self.ssh_params)
        self.ssh_client.get_transport().set_keepalive(KEEPALIVE)

    def get_connection(self, url, proxies=None):
        transport = self.ssh_client.get_transport() if self.ssh_client else None
        if self.ssh_client is not None and (transport is None or not transport.is_active()):
            with self.pools.lock:
                self.pools.clear()  # their channels belonged to the dead transport
            self.ssh_client.close()
            self._connect()
        return super().get_connection(url, proxies)


class TLSMaterial:
    """A client's TLS files: checked PEM text written to a private directory for the client's life."""

    def __init__(self, *, ca="", cert="", key=""):
        _check_pem(ca, cert, key)
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None
        self.path = tempfile.mkdtemp(prefix="opsportal-engine-tls-", dir=base)  # mode 0700
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)
        try:
            self.ca = self._write("ca.pem", ca) if ca else None
            self.cert = self._write("cert.pem", cert) if cert else None
            self.key = self._write("key.pem", key) if key else None
        except BaseException:
            self.remove()
            raise

    def _write(self, name, text):
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return path

    def remove(self):
        self._finalizer()

    @property
    def removed(self):
        return not self._finalizer.alive


def _check_pem(ca, cert, key):
    """Refuse unusable PEM text in plain words (never echoing it); the key must match the certificate."""
    if bool(cert) != bool(key):
        raise ValueError("give both the client certificate and its private key, or neither")
    try:
        if ca:
            x509.load_pem_x509_certificates(ca.encode())
    except ValueError:
        raise ValueError("the CA certificate is not PEM-encoded X.509")
    if not cert:
        return
    try:
        certificate = x509.load_pem_x509_certificate(cert.encode())
    except ValueError:
        raise ValueError("the client certificate is not a PEM-encoded X.509 certificate")
    try:
        private = serialization.load_pem_private_key(key.encode(), password=None)
    except TypeError:
        raise ValueError("the client key is encrypted: give it unencrypted (it is stored encrypted by the portal)")
    except ValueError:
        raise ValueError("the client key is not a PEM-encoded private key")
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if private.public_key().public_bytes(*fmt) != certificate.public_key().public_bytes(*fmt):
        raise ValueError("the client key does not belong to the client certificate")


def close_stream(stream):
    """End a streaming response from another thread: events, logs, stats or an exec's output.

    docker-py's CancellableStream.close() refuses SSH streams; a paramiko channel is closed
    directly, a socket is shut down first so that a thread blocked reading it wakes up.
    """
    response = getattr(stream, "_response", stream)
    raw = getattr(response, "raw", None)
    if raw is None or raw.closed:
        return
    try:
        fp = raw._fp.fp
    except AttributeError:
        response.close()
        return
    sock = None
    inner = getattr(fp, "raw", None)
    if inner is not None:
        sock = getattr(inner, "_sock", None) or getattr(inner, "sock", None)
    elif getattr(fp, "channel", None) is not None:
        sock = fp.channel
    if isinstance(sock, paramiko.Channel):
        sock.close()
    elif sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    response.close()
