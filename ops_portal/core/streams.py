"""Live streams over websockets: a registry of stream kinds and a publisher.

A stream kind decides, through the permission layer, which Channels groups a user may join for
the parameters they ask for, and may serve a backlog ("everything after seq N") so a client that
connects late or reconnects misses nothing. Publishers anywhere (web, worker, beat) call publish().
"""
import asyncio
import json
import logging
import re
import threading

from asgiref.sync import async_to_sync
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


def _send(group, message):
    _send_all([(check_group(group), message)])


def _send_all(messages):
    """Send (group, message) pairs in order, from sync code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _send_now(messages)
    # Sync code called from a thread that runs an event loop (a Playwright script, an async test
    # saving a model): async_to_sync refuses to run there, so send from a helper thread.
    sender = threading.Thread(target=_send_now, args=(messages,), name="streams-send")
    sender.start()
    sender.join()


def _send_now(messages):
    # Live delivery is best effort: what matters is stored, and a client that reconnects catches up
    # from the database. A caller (a job's state change, an approval) must not fail because Redis
    # is restarting.
    # One async_to_sync call for all: each call runs a new event loop, and the channel layer opens
    # a Redis connection per loop (a few ms of CPU each), so a message per call costs that per group.
    async def send():
        layer = get_channel_layer()
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send)()
    except (RedisError, OSError) as exc:
        groups = ", ".join(group for group, _ in messages[:3]) + (" …" if len(messages) > 3 else "")
        log.warning("live event for %s not sent: %s", groups, exc)


def send_control(group, message):
    """Send a message of another type than events (e.g. "auth.changed") to a group's consumers."""
    _send(group, message)


def publish(group, payload):
    """Send one event to everyone subscribed to `group` (from sync code: web, worker, beat)."""
    _send(group, {"type": "stream.event", "group": group, "payload": payload})


def publish_to(groups, payload):
    """Send one event to several groups (a job's summary to its targets' object streams) over one
    event loop and Redis connection, rather than publish() per group."""
    _send_all([(check_group(group), {"type": "stream.event", "group": group, "payload": payload})
               for group in groups])


def batch_message(group, payloads):
    """One channel message for several events, encoded to JSON once for every subscriber.

    Consumers forward the encoded text as it is (no per-socket decoding or encoding) unless they
    must filter it; `first`/`last` carry the sequence numbers of ordered events for that decision.
    """
    payloads = list(payloads)
    return {"type": "stream.batch", "group": check_group(group), "raw": json.dumps(payloads, separators=(",", ":")),
            "count": len(payloads), "first": payloads[0].get("seq"), "last": payloads[-1].get("seq")}


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
