"""Warm SSH connections across jobs: the settings, and closing them everywhere when a credential or a
host changes.

Each worker process keeps idle authenticated connections (schedulers/hostlib/warm.py, bounded by
SSH_WARM_MAX and SSH_WARM_IDLE_SECONDS). When a credential is rotated or deleted, or a host's
pinned key, address, port, user, credential or enabled flag changes, or the host is deleted, the
change announces it on commit over Redis pub/sub; every worker process listens and closes the
matching connections at once. Pub/sub rather than a Celery broadcast: remote-control commands
reach a prefork worker's main process only, while the connections live in its child processes.
A missed message costs nothing in safety: a connection is reused only for the same credential
fingerprint and the same pinned key, so old ones never match and idle out.
"""
import json
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import transaction

from ops_portal.core import redis as portal_redis
from schedulers.host import WARM, credential_fingerprint

log = logging.getLogger(__name__)
_listener = None
_listener_lock = threading.Lock()


def configure():
    """Apply the settings to this process's warm pool (idempotent; cheap)."""
    size, idle = settings.SSH_WARM_MAX, settings.SSH_WARM_IDLE_SECONDS
    if (WARM.max_connections, WARM.idle_seconds) != (size, float(idle)):
        WARM.configure(size, idle)
    return WARM


def channel():
    return portal_redis.key("ssh-warm", "revoke")


STATS_EVERY = 10.0  # seconds between a process's reports of its warm pool (kept 3x as long)


def report():
    """Write this process's warm pool figures to Redis (read by totals())."""
    key = portal_redis.key("ssh-warm", "stats", f"{socket.gethostname()}:{os.getpid()}")
    portal_redis.client().set(key, json.dumps(WARM.stats()), ex=int(STATS_EVERY * 3))


def totals():
    """Warm connections held now over every listening process: {"processes", "idle", "reused"}."""
    client = portal_redis.client()
    keys = list(client.scan_iter(match=portal_redis.key("ssh-warm", "stats", "*"), count=500))
    found = {"processes": 0, "idle": 0, "reused": 0}
    for raw in client.mget(keys) if keys else []:
        if raw is None:
            continue
        try:
            stats = json.loads(raw)
            found["idle"] += int(stats.get("idle", 0))
            found["reused"] += int(stats.get("reused", 0))
        except (ValueError, TypeError, AttributeError):
            continue
        found["processes"] += 1
    return found


def fingerprint_of(credential):
    """The warm pool's name for a credential's current key material (a hash, never the key)."""
    return credential_fingerprint(credential.private_key, credential.passphrase or "")


def revoke_on_commit(*, fingerprint=None, address=None, port=None):
    """Close the matching warm connections in every worker once the change is committed."""
    message = {"fingerprint": fingerprint, "address": address, "port": port}
    transaction.on_commit(lambda: publish(**message))


def publish(*, fingerprint=None, address=None, port=None):
    WARM.revoke(fingerprint=fingerprint, address=address, port=port)
    try:
        portal_redis.client().publish(channel(), json.dumps(
            {"fingerprint": fingerprint, "address": address, "port": port}))
    except Exception as exc:  # Redis away: the fingerprint and host key checks still hold
        log.warning("could not announce closing warm SSH connections: %s", exc)


def apply(raw):
    """Act on one announcement (from the pub/sub channel)."""
    try:
        message = json.loads(raw)
        fingerprint, address, port = message.get("fingerprint"), message.get("address"), message.get("port")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise ValueError("fingerprint")
        if port is not None:
            port = int(port)
        return WARM.revoke(fingerprint=fingerprint, address=address if isinstance(address, str) else None,
                           port=port)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("ignored a malformed warm SSH announcement: %s", exc)
        return 0


def start_listener():
    """Listen for announcements in a daemon thread of this process (each worker process calls it)."""
    global _listener
    with _listener_lock:
        if _listener is not None and _listener.is_alive():
            return _listener
        ready = threading.Event()
        _listener = threading.Thread(target=_listen, args=(ready,), name="ssh-warm-listener", daemon=True)
        _listener.start()
    ready.wait(5)
    return _listener


def _listen(ready):
    failing = False
    while True:
        try:
            pubsub = portal_redis.client().pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(channel())
            ready.set()
            if failing:
                log.warning("listening for warm SSH announcements again")
                # Announcements may have been missed: drop what is idle rather than trust it.
                WARM.clear()
            failing = False
            reported = 0.0
            while True:
                if time.monotonic() - reported >= STATS_EVERY:
                    report()
                    reported = time.monotonic()
                message = pubsub.get_message(timeout=5.0)
                if message is not None and message.get("type") == "message":
                    apply(message["data"])
        except Exception as exc:
            if not failing:
                log.warning("warm SSH announcements: Redis failed, retrying: %s", exc)
            failing = True
            ready.set()
            threading.Event().wait(2.0)
