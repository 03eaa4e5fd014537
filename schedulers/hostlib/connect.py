"""Targets, host key pinning, connecting in plain words, and the bounded connection pool.

Threading: a connection (a Fabric `Connection` around one paramiko Transport) is used by
one thread at a time. The pool enforces that with leases: `pool.connection(target)` hands a
connection to the calling thread until the `with` block ends; another thread that wants the
same target meanwhile gets a second connection while the total stays under the bound, or
waits. Channels of one leased connection (the command and its kill channel) are used by
that one thread.
"""
import base64
import binascii
import errno
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import paramiko
from fabric import Config, Connection
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import NoValidConnectionsError

from ..base import BackendError, CancelToken
from ..sshkeys import BadKeyError, fingerprint, load_private_key, public_line


@dataclass(frozen=True)
class SSHTarget:
    """One host as the backend reaches it. Secrets are kept out of repr() (and so out of logs)."""

    transport: ClassVar[str] = "ssh"  # see base.Backend.transports
    name: str
    address: str
    port: int = 22
    username: str = "root"
    private_key: str = field(default="", repr=False)  # OpenSSH/PEM text; never written to disk
    passphrase: str = field(default="", repr=False)
    pinned_host_key: str = ""  # "ssh-ed25519 AAAA…", or "" to trust on first use and report it
    connect_timeout: float = 10.0

    @property
    def endpoint(self):
        return f"{self.address}:{self.port}"

    @property
    def login(self):
        return f"{self.username}@{self.name}"


class HostKeyMismatch(BackendError):
    """The host offered a key other than the pinned one; nothing was sent to it."""

    def __init__(self, target, expected_key, offered_key):
        self.target_name = target.name
        self.expected_key = public_line(expected_key)
        self.offered_key = public_line(offered_key)
        self.expected_fingerprint = fingerprint(expected_key)
        self.offered_fingerprint = fingerprint(offered_key)
        super().__init__(
            f"host key for {target.name} changed: expected {self.expected_fingerprint}, "
            f"got {self.offered_fingerprint}; an admin must accept the new key"
        )

    def __reduce__(self):
        # Picklable (Celery results, process pools) although __init__ takes keys, not a message.
        return _rebuild_mismatch, (str(self), self.target_name, self.expected_key, self.offered_key)


def _rebuild_mismatch(message, target_name, expected_key, offered_key):
    error = HostKeyMismatch.__new__(HostKeyMismatch)
    BackendError.__init__(error, message)
    error.target_name = target_name
    error.expected_key, error.offered_key = expected_key, offered_key
    error.expected_fingerprint = fingerprint(parse_public_key(expected_key))
    error.offered_fingerprint = fingerprint(parse_public_key(offered_key))
    return error


class HostConnection(Connection):
    """A Fabric Connection that knows its target and the host key it was offered."""

    # Class attributes, so Fabric's DataProxy treats them as attributes and not config keys.
    target = None
    host_key = ""  # the key line the host offered on this connection
    host_key_fingerprint = ""
    trusted_on_first_use = False  # True when no key was pinned: the portal should pin host_key
    opened_at = 0.0  # time.monotonic() when the handshake completed (warm.py's revocations)
    reused = False  # True when it came from the warm pool (no handshake for this job)
    # (channel, time.monotonic()) of the session the last verify() opened: the next channel()
    # takes it, so proving a kept connection costs no round trip of its own when a command follows.
    _spare = None
    SPARE_SECONDS: ClassVar[float] = 30.0

    def verify(self, timeout=5.0):
        """Return True when the host still answers on this connection (one session round trip,
        or none when a session opened for the same proof a moment ago is still open)."""
        if self._fresh_spare(1.0) is not None:
            return True
        self.drop_spare()
        try:
            self._spare = (self.channel(timeout=timeout), time.monotonic())
            return True
        except BackendError:
            return False

    def _fresh_spare(self, within):
        spare = self._spare
        if spare is None:
            return None
        chan, opened = spare
        transport = self.transport
        if chan.closed or transport is None or not transport.is_active() or time.monotonic() - opened >= within:
            return None
        return chan

    def drop_spare(self):
        """Close the session a verify kept and nothing used (before the connection is kept idle)."""
        spare, self._spare = self._spare, None
        if spare is not None:
            try:
                spare[0].close()
            except Exception:  # noqa: BLE001 — the connection is going anyway
                pass

    def sftp(self):
        """The connection's SFTP client. Fabric keeps the first one for good; a connection kept
        warm across jobs can hold one whose channel has closed since (the server ended the SFTP
        subsystem), which fails every call with "Socket is closed": open a new one then."""
        client = self._sftp
        if client is not None:
            channel = client.get_channel()
            if channel is None or channel.closed:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 — already closed; nothing to give back
                    pass
                self._sftp = None
        return super().sftp()

    def channel(self, timeout=None):
        """A new session channel on this connection's transport (the one verify() just opened, if
        it is still open: a session nobody has used yet)."""
        chan = self._fresh_spare(self.SPARE_SECONDS)
        if chan is not None:
            self._spare = None
            return chan
        self.drop_spare()
        transport = self.transport
        if transport is None or not transport.is_active():
            raise BackendError(f"the connection to {self.target.name} is closed")
        try:
            return transport.open_session(timeout=timeout or 15.0)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise BackendError(f"could not open a session on {self.target.name}: {_plain(exc)}")


def parse_public_key(line, *, what="pinned host key"):
    """Parse "type base64 [comment]" into a paramiko public key; ValueError when it is not one."""
    fields = (line or "").split()
    if len(fields) < 2:
        raise ValueError(f"{what} {line!r} is not a 'type base64' public key line")
    try:
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1], validate=True))
    except (binascii.Error, paramiko.SSHException, UnknownKeyType, ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not a valid {fields[0]} key: {exc}")


def _same_key(one, other):
    return one.get_name() == other.get_name() and one.asbytes() == other.asbytes()


class _PinningPolicy(paramiko.MissingHostKeyPolicy):
    """Accept an unpinned host's key (trust on first use); refuse any key but the pinned one.

    The client holds no known_hosts entries except the pinned key, so paramiko asks this
    policy about every key it has not matched itself.
    """

    def __init__(self, target, expected):
        self.target = target
        self.expected = expected

    def missing_host_key(self, client, hostname, key):
        if self.expected is not None and not _same_key(key, self.expected):
            raise HostKeyMismatch(self.target, self.expected, key)


def _plain(exc):
    text = str(exc).strip()
    return text or type(exc).__name__


def _connect_error(target, exc, key_fp, elapsed):
    """Translate what paramiko/socket raise while connecting into one plain-words BackendError."""
    where = f"{target.endpoint} ({target.name})"
    timed_out = f"timed out connecting to {target.endpoint} ({target.name}) after {target.connect_timeout:g}s"
    if isinstance(exc, paramiko.AuthenticationException):
        return BackendError(f"authentication failed for {target.login} (key {key_fp})")
    if isinstance(exc, NoValidConnectionsError):
        codes = {getattr(err, "errno", None) for err in exc.errors.values()}
        if codes <= {errno.ECONNREFUSED}:
            return BackendError(f"connection refused by {where}: nothing accepts SSH there (host or sshd down?)")
        exc = next(iter(exc.errors.values()))
    if isinstance(exc, socket.timeout | TimeoutError):
        return BackendError(timed_out)
    if isinstance(exc, paramiko.SSHException) and elapsed >= target.connect_timeout * 0.95:
        # paramiko gives up on a silent handshake with "No existing session" or a banner error.
        return BackendError(f"{timed_out}: the port accepted the connection but no SSH handshake followed")
    if isinstance(exc, socket.gaierror):
        return BackendError(f"cannot resolve the address {target.address!r} of {target.name}: {exc.strerror}")
    if isinstance(exc, ConnectionRefusedError):
        return BackendError(f"connection refused by {where}: nothing accepts SSH there (host or sshd down?)")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return BackendError(f"host unreachable: {where} ({exc.strerror})")
    if isinstance(exc, ConnectionResetError | EOFError) or "protocol banner" in str(exc).lower():
        return BackendError(f"no SSH greeting from {where}: the port accepted the connection but "
                            f"closed it or did not answer ({_plain(exc)})")
    if isinstance(exc, paramiko.SSHException | OSError):
        return BackendError(f"SSH connection to {where} failed: {_plain(exc)}")
    return None


def connect(target: SSHTarget) -> HostConnection:
    """Open an authenticated connection to target, pinned to its host key (or trusting on first use).

    Raises HostKeyMismatch when the host offers another key than the pinned one, and
    BackendError in plain words for anything else that prevents a login.
    """
    try:
        pkey = load_private_key(target.private_key, target.passphrase or None)
    except BadKeyError as exc:
        raise BackendError(f"the private key for {target.login} cannot be used: {exc}")
    try:
        expected = parse_public_key(target.pinned_host_key) if target.pinned_host_key else None
    except ValueError as exc:
        raise BackendError(f"{target.name}: {exc}")
    timeout = float(target.connect_timeout)
    conn = HostConnection(
        host=target.address,
        user=target.username,
        port=int(target.port),
        # No SSH config files or Fabric config files: the target says everything.
        config=Config(lazy=True, ssh_config=paramiko.SSHConfig()),
        gateway=False,
        forward_agent=False,
        connect_kwargs={
            "pkey": pkey,
            "look_for_keys": False,
            "allow_agent": False,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        },
    )
    conn.target = target
    if expected is not None:
        # paramiko then asks the host for this key type first and compares it itself.
        name = target.address if int(target.port) == 22 else f"[{target.address}]:{int(target.port)}"
        conn.client.get_host_keys().add(name, expected.get_name(), expected)
    conn.client.set_missing_host_key_policy(_PinningPolicy(target, expected))
    started = time.monotonic()
    sock = None
    try:
        sock = _nodelay_socket(target, timeout)
        conn.connect_kwargs["sock"] = sock
        conn.open()
    except HostKeyMismatch:
        _discard(conn, sock)
        raise
    except paramiko.BadHostKeyException as exc:
        _discard(conn, sock)
        raise HostKeyMismatch(target, exc.expected_key, exc.key)
    except Exception as exc:
        _discard(conn, sock)
        error = _connect_error(target, exc, fingerprint(pkey), time.monotonic() - started)
        if error is None:
            raise
        raise error from None
    finally:
        conn.connect_kwargs.pop("sock", None)  # the transport owns it now; never reopened from here
    offered = conn.transport.get_remote_server_key()
    conn.host_key = public_line(offered)
    conn.host_key_fingerprint = fingerprint(offered)
    conn.trusted_on_first_use = expected is None
    conn.transport.set_keepalive(30)
    conn.opened_at = time.monotonic()
    return conn


def _nodelay_socket(target, timeout):
    """The TCP connection for an SSH session, with Nagle's algorithm off.

    With it on, a small packet sent while an earlier one waits for its acknowledgement is held
    until that arrives, and the server delays acknowledgements by up to 40 ms: the handshake's
    back-to-back messages took 65 ms instead of 23 on a fleet host, and a session opened on a
    kept connection right after the last one's close 43 ms instead of 0.5 (every command of a
    warm connection after the first, and every step of a multi-command action)."""
    sock = socket.create_connection((target.address, int(target.port)), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not a TCP socket after all (nothing else to tune); Nagle stays on
        pass
    return sock


def _discard(conn, sock=None):
    """Close a connection that failed to open: Fabric's close() skips a transport it never recorded."""
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
    try:
        conn.close()
    finally:
        conn.client.close()


def _close(conn):
    """Close a pooled connection, also when its transport already died (Fabric would skip it)."""
    client = getattr(conn, "client", None)
    try:
        conn.close()
    finally:
        if client is not None:
            client.close()


class SSHPool:
    """A bounded pool of connections, keyed by target, reused across the commands of a job.

    At most max_connections are open (or opening) at once. A thread that needs a connection
    when all are leased waits; idle connections to other targets are closed to make room.
    A connection idle longer than verify_after seconds is checked with a session round trip
    before reuse; one idle longer than idle_timeout is closed.
    on_host_key(target, key_line, fingerprint) is called when a host without a pinned key
    was trusted on first use, so the portal can pin it.

    With warm (a warm.WarmPool, process-wide), a connection is first asked of it before a
    handshake, and healthy connections go back to it when the pool closes, unless reusable()
    says no (the job was canceled). A broken connection is never given back.
    """

    def __init__(self, max_connections: int = 8, *, on_host_key: Callable | None = None,
                 idle_timeout: float = 300.0, verify_after: float = 15.0, verify_timeout: float = 5.0,
                 connect: Callable = connect, warm=None, reusable: Callable | None = None):
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.on_host_key = on_host_key
        self.idle_timeout = idle_timeout
        self.verify_after = verify_after
        self.verify_timeout = verify_timeout
        self._connect = connect
        self.warm = warm if warm is not None and warm.enabled else None
        self.reusable = reusable
        self._cond = threading.Condition()
        self._idle = []  # [(target, conn, released_at)], oldest first
        # By identity: Fabric Connections to the same host/user/port compare (and hash) equal.
        self._leased = {}
        self._opening = 0
        self._closed = False
        self.opened = 0  # handshakes made over the pool's life (for tests and metrics)
        self.reused = 0  # connections taken from the warm pool instead

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def stats(self):
        with self._cond:
            return {"idle": len(self._idle), "leased": len(self._leased), "opening": self._opening,
                    "opened": self.opened, "reused": self.reused, "max": self.max_connections}

    @contextmanager
    def connection(self, target: SSHTarget, *, cancel: CancelToken | None = None, wait: float | None = None):
        """Lease a connection to target for the `with` block; a broken one is dropped, not reused."""
        conn = self.acquire(target, cancel=cancel, wait=wait)
        broken = True
        try:
            yield conn
            broken = False
        finally:
            self.release(conn, broken=broken or not conn.is_connected)

    def acquire(self, target, *, cancel=None, wait=None):
        """Return a connection leased to the caller; give it back with release()."""
        deadline = time.monotonic() + wait if wait is not None else None
        while True:
            conn, idle_for = self._lease_idle_or_reserve(target, cancel, deadline, wait)
            if conn is None:
                break  # a slot is reserved: connect
            # A connection idle for a while may have died silently (host rebooted, NAT forgot
            # it): prove it with a session round trip before handing it out.
            if idle_for < self.verify_after or conn.verify(self.verify_timeout):
                return conn
            self.release(conn, broken=True)
        try:
            conn = self.warm.checkout(target) if self.warm is not None else None
            if conn is not None and not conn.verify(self.verify_timeout):
                # A kept connection the host closed meanwhile: the full suite saw one fail with
                # EOF on the next job's first session, half a second after the last job gave it
                # back. One session round trip proves it; nothing of this job ran on it yet, so a
                # fresh login replaces it.
                _close(conn)
                conn = None
            warm = conn is not None
            if conn is None:
                conn = self._connect(target)
        except BaseException:
            with self._cond:
                self._opening -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._opening -= 1
            if warm:
                self.reused += 1
            else:
                self.opened += 1
            if self._closed:
                self._cond.notify_all()
                self._retire(conn)
                raise BackendError("the SSH connection pool is closed")
            self._leased[id(conn)] = conn
        if conn.trusted_on_first_use and self.on_host_key is not None:
            self.on_host_key(target, conn.host_key, conn.host_key_fingerprint)
        return conn

    def _lease_idle_or_reserve(self, target, cancel, deadline, wait):
        """Under the lock: (idle connection, seconds idle) leased, or (None, None) with a slot reserved."""
        to_close, to_retire = [], []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise BackendError("the SSH connection pool is closed")
                    self._expire(to_close)
                    conn, released_at = self._take_idle(target, to_close)
                    if conn is not None:
                        self._leased[id(conn)] = conn
                        return conn, time.monotonic() - released_at
                    if len(self._idle) + len(self._leased) + self._opening >= self.max_connections and self._idle:
                        to_retire.append(self._idle.pop(0)[1])  # least recently used, another target
                    if len(self._idle) + len(self._leased) + self._opening < self.max_connections:
                        self._opening += 1
                        return None, None
                    if cancel is not None and cancel.is_set():
                        raise BackendError(f"canceled while waiting for a connection to {target.name}")
                    if deadline is not None and time.monotonic() > deadline:
                        raise BackendError(f"no free connection for {target.name} within {wait:g}s "
                                           f"(pool of {self.max_connections})")
                    self._cond.wait(0.2)
        finally:
            for stale in to_close:
                _close(stale)
            for conn in to_retire:
                self._retire(conn)

    def _take_idle(self, target, to_close):
        for index in range(len(self._idle) - 1, -1, -1):
            held, conn, released_at = self._idle[index]
            if held == target:
                del self._idle[index]
                if conn.is_connected:
                    return conn, released_at
                to_close.append(conn)
        return None, None

    def _expire(self, to_close):
        limit = time.monotonic() - self.idle_timeout
        while self._idle and self._idle[0][2] < limit:
            to_close.append(self._idle.pop(0)[1])

    def release(self, conn, *, broken=False):
        drop_spare = getattr(conn, "drop_spare", None)
        if drop_spare is not None:
            drop_spare()  # a kept connection holds no open session
        with self._cond:
            self._leased.pop(id(conn), None)
            healthy = not broken and conn.is_connected
            keep = healthy and not self._closed
            if keep:
                self._idle.append((conn.target, conn, time.monotonic()))
            self._cond.notify_all()
        if healthy and not keep:
            self._retire(conn)  # given back after the pool closed: warm, or closed
        elif not keep:
            _close(conn)

    def discard(self, conn):
        """Give back a leased connection that must not be reused."""
        self.release(conn, broken=True)

    def close(self):
        """Close every idle connection now and every leased one when it is given back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for _, conn, _ in idle:
            self._retire(conn)

    def _retire(self, conn):
        """A healthy connection this pool no longer wants: to the warm pool when reuse is allowed."""
        try:
            reuse = self.warm is not None and (self.reusable is None or self.reusable())
        except Exception:
            reuse = False
        if reuse:
            self.warm.put(conn)
        else:
            _close(conn)


@contextmanager
def leased(pool_or_conn, target, *, cancel=None):
    """Yield a connection: a lease from an SSHPool, or the HostConnection given (left open)."""
    if isinstance(pool_or_conn, SSHPool):
        with pool_or_conn.connection(target, cancel=cancel) as conn:
            yield conn
    elif isinstance(pool_or_conn, HostConnection):
        yield pool_or_conn
    else:
        raise TypeError(f"expected an SSHPool or a HostConnection, got {type(pool_or_conn).__name__}")
