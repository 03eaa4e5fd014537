"""Live streams over websockets: a registry of stream kinds and a publisher.

A stream kind decides, through the permission layer, which Channels groups a user may join for
the parameters they ask for, and may serve a backlog ("everything after seq N") so a client that
connects late or reconnects misses nothing. Publishers anywhere (web, worker, beat) call publish().
"""
import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import re
import threading

import orjson
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict

log = logging.getLogger(__name__)
_GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,90}\Z")
_STREAMS = {}


class StreamDenied(Exception):
    """The user may not subscribe (code 'forbidden') or the parameters are wrong ('invalid')."""

    def __init__(self, message, code="forbidden"):
        super().__init__(message)
        self.code = code


class Stream:
    """Base stream kind. Subclasses set `name` and implement `groups`; `backlog` is optional."""

    name = ""
    ordered = False  # events carry a "seq" and the backlog can be asked "since seq N"

    def groups(self, user, params):
        """Authorise and return the group names to join; raise StreamDenied otherwise."""
        raise NotImplementedError

    def backlog(self, user, params, since, limit):
        """At most `limit` events after `since`, oldest first (sync; runs in a thread). Only for
        ordered streams: the consumer asks page after page until a page comes back short."""
        return []


def register(stream_cls):
    stream = stream_cls()
    if not stream.name or stream.name in _STREAMS:
        raise ValueError(f"stream {stream.name!r} is unnamed or registered twice")
    _STREAMS[stream.name] = stream
    return stream_cls


def get(name):
    return _STREAMS.get(name)


def names():
    return sorted(_STREAMS)


def check_group(name):
    if not _GROUP.match(name):
        raise ValueError(f"invalid group name {name!r}")
    return name


class _Sender:
    """An event loop on a thread of its own, one per process, shared by every sync publisher.

    async_to_sync makes a new event loop for each call, and the channel layer keeps its Redis
    connection per event loop: every event sent from sync code (web views, workers, beat) paid a
    new connection, 7-20 ms here, so a launch that told 50 hosts' streams waited about a second
    and a job's state change as long again. Kept, the loop keeps its connection. A forked child
    (a prefork Celery worker) makes its own: the parent's thread does not survive the fork.
    """

    timeout = 15.0  # a send that takes longer is dropped (live delivery is best effort)
    max_unwaited = 1000  # sends not waited for (wait=False) that may be pending at once
    drain_at_exit = 2.0  # seconds a process ending waits for its pending sends

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.drain)

    def _reset(self):
        self._lock = threading.Lock()
        self._loop = None
        self._order = None
        self._pending = set()
        self._room = threading.BoundedSemaphore(self.max_unwaited)

    def _running_loop(self):
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="streams-sender", daemon=True).start()
                self._loop, self._order = loop, asyncio.Lock()
            return self._loop

    def send(self, items, *, wait=True):
        """Send items in order after every send this process asked for before (waited for or not).
        wait=False returns at once: for a caller on a job's critical path (a launch, a claim) that
        must not wait for Redis to tell 50 hosts' streams; still in order with the sends after it."""
        loop = self._running_loop()
        if not wait and not self._room.acquire(blocking=False):
            log.warning("live events for %s not sent: %d sends are still pending", items[0][0], self.max_unwaited)
            return
        future = asyncio.run_coroutine_threadsafe(self._in_order(items), loop)
        if not wait:
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._sent)
            return
        try:
            future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.warning("live events for %s not sent: no answer in %gs", items[0][0], self.timeout)

    def _sent(self, future):
        with self._lock:
            self._pending.discard(future)
        self._room.release()
        if not future.cancelled() and future.exception() is not None:
            log.warning("live events not sent: %s", future.exception())

    async def _in_order(self, items):
        async with self._order:
            await _send_all(items)

    def drain(self, timeout=None):
        """Wait (up to `timeout`, default drain_at_exit seconds) for the sends not waited for."""
        with self._lock:
            pending = list(self._pending)
        if pending:
            concurrent.futures.wait(pending, timeout=self.drain_at_exit if timeout is None else timeout)


async def _send_all(items):
    # Live delivery is best effort: what matters is stored, and a client that reconnects catches up
    # from the database. A caller (a job's state change, an approval) must not fail because Redis
    # is restarting.
    layer = get_channel_layer()
    for n, (group, message) in enumerate(items):
        try:
            await layer.group_send(group, message)
        except (RedisError, OSError) as exc:
            unsent = [name for name, _ in items[n:]]
            log.warning("live event for %s not sent: %s", ", ".join(unsent[:3]) + (" …" if len(unsent) > 3 else ""),
                        exc)
            return


_sender = _Sender()


def _send(group, message):
    _send_each([(group, message)])


def _send_each(items, *, wait=True):
    """Send (group, message) pairs in order, in one hop to the sender loop."""
    items = [(check_group(group), message) for group, message in items]
    if items:
        _sender.send(items, wait=wait)


def send_control(group, message):
    """Send a message of another type than events (e.g. "auth.changed") to a group's consumers."""
    _send(group, message)


def publish(group, payload):
    """Send one event to everyone subscribed to `group` (from sync code: web, worker, beat)."""
    _send(group, {"type": "stream.event", "group": group, "payload": payload})


def batch_message(group, payloads):
    """One channel message for several events, encoded to JSON once for every subscriber.

    Consumers forward the encoded text as it is (no per-socket decoding or encoding) unless they
    must filter it; `first`/`last` carry the sequence numbers of ordered events for that decision.
    """
    payloads = list(payloads)
    return {"type": "stream.batch", "group": check_group(group), "raw": encode(payloads),
            "count": len(payloads), "first": payloads[0].get("seq"), "last": payloads[-1].get("seq")}


def encode(payloads):
    """Compact JSON text of events, by orjson: a burst's batch of 5,000 output lines is encoded
    several times faster than by the standard library (which takes what orjson refuses, such as an
    integer wider than 64 bits). Non-ASCII text is written as UTF-8, not as \\u escapes: the
    same JSON to a client."""
    try:
        return orjson.dumps(payloads, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(payloads, separators=(",", ":"))


def publish_to(groups, payload, *, wait=True):
    """Send one event to several groups (a job's summary to each of its targets' streams) at once;
    with wait=False the caller goes on before Redis has them (still in order, see _Sender.send)."""
    _send_each([(group, {"type": "stream.event", "group": group, "payload": payload}) for group in groups], wait=wait)


def publish_each(pairs):
    """Send one event to each (group, payload) of `pairs`, in order, in one hop to the sender."""
    _send_each([(group, {"type": "stream.event", "group": group, "payload": payload}) for group, payload in pairs])


def publish_many(group, payloads):
    """Send several events as one channel message (a job's batch of output lines)."""
    if payloads:
        _send(group, batch_message(group, payloads))


def environment_groups(user, params, group_name, action="view"):
    """Groups for every environment where `user` may do `action`, or only the one named in
    params["environment"] (refused when the user may not)."""
    environments = restrict(Environment.objects.all(), user, action)
    if "environment" in params:
        environments = environments.filter(name=str(params["environment"]))
        if not environments.exists():
            raise StreamDenied("You may not view that environment.")
    return [group_name(pk) for pk in environments.values_list("pk", flat=True)]
