"""SSH helpers for a fleet run: the run's key pair, its known_hosts file, logins."""

import base64
import os
import socket
import time
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class CommandResult:
    """Outcome of a command run on a host (over SSH or docker exec)."""

    exit_code: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self):
        return self.exit_code == 0

    def check(self):
        """Return self, or raise RuntimeError when the command failed."""
        if not self.ok:
            raise RuntimeError(f"exit {self.exit_code}: {self.stderr or self.stdout}".strip())
        return self


def write_private(path, data):
    """Write bytes to path readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def generate_keypair(key_path):
    """Write a new ed25519 key pair (OpenSSH format) to key_path and key_path.pub; return the public line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_line = public.decode() + " opsportal-fleet"
    write_private(key_path, private)
    with open(f"{key_path}.pub", "w") as fh:
        fh.write(public_line + "\n")
    return public_line


def known_hosts_name(address, port):
    return address if port == 22 else f"[{address}]:{port}"


def write_known_hosts(path, hosts):
    """Write a known_hosts file pinning each host's key at its [address]:port."""
    lines = [f"{known_hosts_name(h.address, h.port)} {h.host_key}\n" for h in hosts if h.host_key]
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.writelines(lines)
    os.replace(tmp, path)


def connect(host, known_hosts_path=None, timeout=10.0, pkey=None):
    """Open an SSH session to host that trusts only the key pinned in known_hosts_path.

    Without a known_hosts file, the key pinned is host.host_key.
    """
    client = paramiko.SSHClient()
    if known_hosts_path:
        client.load_host_keys(str(known_hosts_path))
    else:
        keytype, blob = host.host_key.split()[:2]
        key = paramiko.PKey.from_type_string(keytype, base64.b64decode(blob))
        client.get_host_keys().add(known_hosts_name(host.address, host.port), keytype, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        host.address,
        port=host.port,
        username=host.user,
        pkey=pkey,
        key_filename=None if pkey else str(host.key_path),
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


# A busy host (or a loaded machine) can drop a new connection before its banner, or while it
# starts a session; sshd's MaxStartups drops unauthenticated connections at random when many
# arrive at once. Those are worth a second try; a wrong host key or a refused key is not.
_TRANSIENT_MESSAGES = ("Error reading SSH protocol banner", "No existing session", "SSH session not active")


def is_transient(exc):
    """True when a failed connect is worth retrying: the connection dropped, not a refusal."""
    if isinstance(exc, (paramiko.BadHostKeyException, paramiko.AuthenticationException)):
        return False
    if isinstance(exc, (EOFError, ConnectionResetError, ConnectionAbortedError, socket.timeout)):
        return True
    return isinstance(exc, paramiko.SSHException) and any(m in str(exc) for m in _TRANSIENT_MESSAGES)


def connect_retrying(host, known_hosts_path=None, timeout=10.0, pkey=None, attempts=3):
    """connect(), tried again (up to `attempts` in all) when the connection dropped on the way."""
    for attempt in range(1, attempts + 1):
        try:
            return connect(host, known_hosts_path, timeout=timeout, pkey=pkey)
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            time.sleep(0.5 * attempt)


def run(client, command, timeout=60.0):
    """Run command in an open SSH session; return a CommandResult."""
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    return CommandResult(stdout.channel.recv_exit_status(), out, err)


# What a host that is still starting looks like from here: docker-proxy accepts the
# connection and closes it (banner error), or sshd is not listening yet.
_NOT_READY = (paramiko.SSHException, EOFError, ConnectionError, socket.timeout, OSError)


def sshd_banner(address, port, timeout=3.0):
    """Return True when an SSH server greets on address:port.

    Checked before paramiko connects, because paramiko logs a traceback for every
    connection that docker-proxy accepts and closes while sshd is still starting.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_login(host, known_hosts_path, deadline, pkey=None, abort=None):
    """Retry until host accepts a real login and runs `true`; return seconds waited.

    An open port is not enough: docker-proxy accepts before sshd listens. A changed
    host key (paramiko.BadHostKeyException) or a refused key is not retried. Setting
    the threading.Event abort stops the wait early.
    """
    started = time.monotonic()
    last = None
    while time.monotonic() < deadline:
        if abort is not None and abort.is_set():
            raise TimeoutError(f"{host.name}: wait aborted")
        if not sshd_banner(host.address, host.port):
            last = "no SSH banner yet"
            time.sleep(0.2)
            continue
        try:
            client = connect(host, known_hosts_path, timeout=5.0, pkey=pkey)
        except (paramiko.BadHostKeyException, paramiko.AuthenticationException):
            raise
        except _NOT_READY as exc:
            last = exc
            time.sleep(0.2)
            continue
        try:
            if run(client, "true", timeout=10).ok:
                return time.monotonic() - started
        except _NOT_READY as exc:
            last = exc
        finally:
            client.close()
        time.sleep(0.2)
    raise TimeoutError(f"{host.name} ({host.address}:{host.port}) did not accept SSH: {last!r}")
