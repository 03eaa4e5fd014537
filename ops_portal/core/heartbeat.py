"""Worker and beat heartbeats in Redis.

A daemon thread refreshes `<prefix>:heartbeat:<kind>:<name>` every HEARTBEAT_INTERVAL seconds with a
TTL of HEARTBEAT_TTL. Readiness checks and the job reaper read them: a key that expired means the
process is gone (or stuck past its TTL).
"""
import json
import logging
import os
import socket
import threading
import time

from django.conf import settings

from . import redis as portal_redis

log = logging.getLogger(__name__)
_stop = threading.Event()
_thread = None


def _key(kind, name):
    return portal_redis.key("heartbeat", kind, name)


def beat_once(kind, name, **extra):
    """Write the heartbeat now; `extra` (a worker's queues, the watcher's streams) goes into its payload."""
    payload = json.dumps({"name": name, "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                          **extra})
    portal_redis.client().set(_key(kind, name), payload, ex=settings.HEARTBEAT_TTL)


def forget(kind, name):
    """Remove the heartbeat at once (the process knows it is not healthy; do not wait for the TTL)."""
    portal_redis.client().delete(_key(kind, name))


def _run(kind, name, extra):
    failing = False
    while not _stop.is_set():
        try:
            beat_once(kind, name, **extra)
        except Exception as exc:  # Redis briefly away: keep trying, readiness will show it
            if not failing:  # once per outage, not a traceback every interval
                log.warning("heartbeat to Redis failed, retrying every %ss: %s", settings.HEARTBEAT_INTERVAL, exc)
            failing = True
        else:
            if failing:
                log.warning("heartbeat to Redis works again")
            failing = False
        _stop.wait(settings.HEARTBEAT_INTERVAL)


def start(kind, name, **extra):
    global _thread
    _stop.clear()
    _thread = threading.Thread(target=_run, args=(kind, name, extra), name=f"heartbeat-{kind}", daemon=True)
    _thread.start()


def stop():
    _stop.set()


def alive(kind):
    """Names of the processes of `kind` whose heartbeat is current."""
    client = portal_redis.client()
    prefix = _key(kind, "")
    return sorted(raw.decode()[len(prefix):] for raw in client.scan_iter(match=prefix + "*", count=500))


def is_alive(kind, name):
    return bool(portal_redis.client().exists(_key(kind, name)))


def payloads(kind):
    """{name: payload} of the processes of `kind` whose heartbeat is current."""
    client = portal_redis.client()
    prefix = _key(kind, "")
    keys = sorted(client.scan_iter(match=prefix + "*", count=500))
    found = {}
    for key, raw in zip(keys, client.mget(keys) if keys else [], strict=True):
        if raw is not None:
            try:
                found[key.decode()[len(prefix):]] = json.loads(raw)
            except ValueError:
                found[key.decode()[len(prefix):]] = {}
    return found


def takers(queue):
    """Names of the live workers that consume `queue` (a worker that beats without saying its
    queues counts as taking every one)."""
    client = portal_redis.client()
    keys = list(client.scan_iter(match=_key("worker", "*"), count=500))
    names = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # expired between the scan and the read
            continue
        try:
            payload = json.loads(raw)
        except ValueError:
            continue
        queues = payload.get("queues")
        if queues is None or queue in queues:
            names.append(payload.get("name", "?"))
    return sorted(names)
