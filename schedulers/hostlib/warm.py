"""Warm connections: idle authenticated SSH connections a worker process keeps between jobs.

A job's SSHPool (connect.py) asks WARM for a connection before it makes a handshake and gives
its healthy connections back when the job ends, so a second job on the same hosts within
minutes skips the handshakes. Process-wide (one per worker process), bounded in number
(least recently used closed first) and in idle time (a reaper thread and every call close
what idled too long); max_connections 0 disables it.

What makes a connection reusable is its key: (address, port, user, credential fingerprint,
host key). The credential fingerprint is a hash of the key material, never the key; the host
key is the one the host offered on that connection (connect() refused anything but the pinned
one). A target is served only a connection whose host key equals the target's pinned key:
a target without a pinned key (trust on first use) always makes a fresh handshake, and a
connection that trusted on first use is reused only once the portal pinned the key it saw.
A rotated credential or a changed pinned key therefore never matches old connections;
revoke() closes them at once as well, including those a running job gives back later.
"""
import hashlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict, deque

log = logging.getLogger(__name__)


def credential_fingerprint(private_key: str, passphrase: str = "") -> str:
    """A hash of the key material (and passphrase) naming a credential in the pool; not the key."""
    digest = hashlib.sha256(b"opsportal-warm\0" + (private_key or "").strip().encode() + b"\0"
                            + (passphrase or "").encode())
    return "warm-sha256:" + digest.hexdigest()


def _key_line(line):
    """"type base64" of a public key line, without its comment, for comparison."""
    return " ".join((line or "").split()[:2])


def _endpoint(address, port):
    return (str(address).lower(), int(port))


def _alive(conn):
    transport = getattr(conn, "transport", None)
    return transport is not None and transport.is_active()


def _close(conn):
    client = getattr(conn, "client", None)
    try:
        conn.close()
    except Exception:  # a dead transport: nothing left to say goodbye to
        pass
    finally:
        if client is not None:
            client.close()


class WarmPool:
    """Idle authenticated connections kept across jobs, keyed by endpoint, user, credential and host key.

    checkout(target) takes one out (the caller then holds it alone); put(conn) gives one back.
    Connections are HostConnections from connect(): they carry .target and .host_key and the
    monotonic time they were opened (.opened_at).
    """

    def __init__(self, max_connections: int = 0, idle_seconds: float = 300.0, *, verify_after: float = 2.0,
                 verify_timeout: float = 5.0, clock=time.monotonic):
        self.max_connections = 0
        self.idle_seconds = 0.0
        self.verify_after = verify_after
        self.verify_timeout = verify_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = OrderedDict()  # id(conn) -> (key, conn, idle since); oldest first
        self._revocations = deque(maxlen=4096)  # (time, fingerprint or None, endpoint or None)
        self._reaper = None
        self._reaper_pid = None
        self._wake = threading.Event()
        self.counters = {"reused": 0, "kept": 0, "evicted": 0, "expired": 0, "dead": 0, "revoked": 0}
        self.configure(max_connections, idle_seconds)
        _POOLS.add(self)

    def configure(self, max_connections: int, idle_seconds: float):
        """Set the bounds; 0 for either disables the pool and closes what it holds."""
        if max_connections < 0 or idle_seconds < 0:
            raise ValueError("the warm pool's bounds must not be negative")
        with self._lock:
            self.max_connections, self.idle_seconds = int(max_connections), float(idle_seconds)
            to_close = self._trim()
        self._close_all(to_close)
        self._wake.set()

    @property
    def enabled(self):
        return self.max_connections > 0 and self.idle_seconds > 0

    def key_of(self, target, host_key=None):
        return (*_endpoint(target.address, target.port), target.username,
                credential_fingerprint(target.private_key, target.passphrase),
                _key_line(target.pinned_host_key if host_key is None else host_key))

    def checkout(self, target):
        """A live idle connection for target, now the caller's; None when there is none (handshake)."""
        if not self.enabled or not _key_line(target.pinned_host_key):
            return None  # trust on first use: the key must be seen (and pinned) on a fresh handshake
        key = self.key_of(target)
        while True:
            to_close = []
            with self._lock:
                to_close += self._expire()
                found = next(((ident, conn, since) for ident, (held, conn, since) in reversed(self._idle.items())
                              if held == key), None)
                if found is not None:
                    del self._idle[found[0]]
            self._close_all(to_close)
            if found is None:
                return None
            _, conn, since = found
            # Dead transports are dropped; one idle a while may have died silently (host rebooted,
            # NAT forgot it): a session round trip proves it before it is handed out.
            quiet = self._clock() - since >= self.verify_after
            if not _alive(conn) or (quiet and not conn.verify(self.verify_timeout)):
                with self._lock:
                    self.counters["dead"] += 1
                _close(conn)
                continue
            conn.target = target
            conn.trusted_on_first_use = False  # its key is the pinned one
            conn.reused = True
            with self._lock:
                self.counters["reused"] += 1
            return conn

    def put(self, conn):
        """Keep a healthy connection for a later job; True when kept, else it is closed."""
        if not self.enabled or not _alive(conn) or not _key_line(conn.host_key):
            _close(conn)
            return False
        key = self.key_of(conn.target, host_key=conn.host_key)
        opened_at = getattr(conn, "opened_at", 0.0)
        with self._lock:
            revoked = any(when >= opened_at and self._matches(key, fingerprint, endpoint)
                          for when, fingerprint, endpoint in self._revocations)
            if not revoked:
                self._idle[id(conn)] = (key, conn, self._clock())
                self._idle.move_to_end(id(conn))  # the newest last, as _expire reads them
                self.counters["kept"] += 1
            to_close = self._trim()
        if revoked:
            _close(conn)
            return False
        self._close_all(to_close)
        self._ensure_reaper()
        return True

    def revoke(self, *, fingerprint: str | None = None, address: str | None = None, port: int | None = None):
        """Close the idle connections of a credential fingerprint or to an endpoint now, and those
        opened before now that are given back later. Returns how many were closed now."""
        endpoint = _endpoint(address, port) if address is not None and port is not None else None
        if fingerprint is None and endpoint is None:
            raise ValueError("revoke() needs a fingerprint or an address and port")
        with self._lock:
            self._revocations.append((self._clock(), fingerprint, endpoint))
            gone = [ident for ident, (key, _, _) in self._idle.items() if self._matches(key, fingerprint, endpoint)]
            to_close = [self._idle.pop(ident)[1] for ident in gone]
            self.counters["revoked"] += len(to_close)
        self._close_all(to_close)
        if to_close:
            log.info("closed %d warm SSH connection(s) (%s)", len(to_close),
                     "credential changed" if fingerprint else f"host {endpoint[0]}:{endpoint[1]} changed")
        return len(to_close)

    def clear(self):
        with self._lock:
            to_close = [conn for _, conn, _ in self._idle.values()]
            self._idle.clear()
        self._close_all(to_close)

    def stats(self):
        with self._lock:
            return {"idle": len(self._idle), "max": self.max_connections, "idle_seconds": self.idle_seconds,
                    **self.counters}

    # Under the lock ---------------------------------------------------------------------

    @staticmethod
    def _matches(key, fingerprint, endpoint):
        return (fingerprint is not None and key[3] == fingerprint) or (endpoint is not None and key[:2] == endpoint)

    def _expire(self):
        # _idle is in the order connections were given back, so the stale ones are at its front:
        # stop at the first fresh one (every checkout expires; a scan of all was O(idle) each).
        limit = self._clock() - self.idle_seconds
        stale = []
        for ident, (_, _, since) in self._idle.items():
            if since > limit:
                break
            stale.append(ident)
        self.counters["expired"] += len(stale)
        return [self._idle.pop(ident)[1] for ident in stale]

    def _trim(self):
        if not self.enabled:
            to_close = [conn for _, conn, _ in self._idle.values()]
            self._idle.clear()
            return to_close
        to_close = self._expire()
        while len(self._idle) > self.max_connections:
            to_close.append(self._idle.popitem(last=False)[1][1])  # least recently given back
            self.counters["evicted"] += 1
        return to_close

    # Housekeeping -----------------------------------------------------------------------

    @staticmethod
    def _close_all(conns):
        for conn in conns:
            _close(conn)

    def _ensure_reaper(self):
        with self._lock:
            if self._reaper is not None and self._reaper_pid == os.getpid() and self._reaper.is_alive():
                return
            self._reaper_pid = os.getpid()
            self._reaper = threading.Thread(target=self._reap, name="ssh-warm-reaper", daemon=True)
            self._reaper.start()

    def _reap(self):
        while True:
            with self._lock:
                if not self._idle:
                    self._reaper = None
                    return
                interval = max(1.0, min(30.0, self.idle_seconds / 4 or 1.0))
                to_close = self._trim()
            self._close_all(to_close)
            self._wake.wait(interval)
            self._wake.clear()

    def _forget_after_fork(self):
        # A forked worker child must not use (or close) its parent's sockets: forget them.
        self._lock = threading.Lock()
        self._idle = OrderedDict()
        self._reaper = None


_POOLS = weakref.WeakSet()


def _after_fork_in_child():
    for pool in list(_POOLS):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

WARM = WarmPool()  # the process's pool; disabled until configured (the portal: SSH_WARM_MAX)
