"""The one websocket endpoint (/ws/): authenticate on connect, then subscribe to streams.

Client -> server:
    {"action": "subscribe", "id": "s1", "stream": "status", "params": {...}, "since": 0}
    {"action": "unsubscribe", "id": "s1"}
Server -> client:
    {"type": "subscribed", "id": "s1"} | {"type": "error", "id": "s1", "code": ..., "message": ...}
    {"type": "events", "id": "s1", "items": [event, ...]}

The socket is refused (closed before accept) without a signed-in user or a valid token. Each
subscription is authorised through the permission layer with fresh role bindings. Ordered streams
deliver the backlog after `since`, then live events, with no gap and no duplicate. Events are
batched per subscription (a few milliseconds) so bursts become few messages, never dropped ones. A published
batch is JSON-encoded once by its publisher and forwarded as it is to every subscriber.
"""
import asyncio
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ops_portal.accounts.permissions import forget

from . import streams

log = logging.getLogger(__name__)
FLUSH_DELAY = 0.02
MAX_BATCH = 2000
MAX_SUBSCRIPTIONS = 50


class Subscription:
    def __init__(self, sub_id, stream, groups, since):
        self.id = sub_id
        self.stream = stream
        self.groups = groups
        self.last_seq = since
        self.ready = False  # backlog sent; live events before that are held in `pending`
        self.pending = []
        self.outbox = []  # (JSON text of a list of events, how many), in order

    def accept(self, payloads):
        """Queue decoded events, skipping those already delivered (ordered streams)."""
        if self.stream.ordered:
            fresh = []
            for payload in payloads:
                seq = payload.get("seq")
                if seq is not None:
                    if seq <= self.last_seq:
                        continue
                    self.last_seq = seq
                fresh.append(payload)
            payloads = fresh
        if payloads:
            self.outbox.append((json.dumps(payloads, separators=(",", ":")), len(payloads)))

    def accept_batch(self, message):
        """Queue a published batch as the publisher encoded it, when none of it is a repeat."""
        first = message.get("first")
        if not self.stream.ordered or first is None or first > self.last_seq:
            if self.stream.ordered and message.get("last") is not None:
                self.last_seq = message["last"]
            self.outbox.append((message["raw"], message["count"]))
        else:
            self.accept(json.loads(message["raw"]))

    def take_frames(self):
        """Frames of at most about MAX_BATCH events: {"type": "events", "id": ..., "items": [...]}."""
        head = '{"type":"events","id":' + json.dumps(self.id) + ',"items":['
        frames, parts, size = [], [], 0
        for text, count in self.outbox:
            parts.append(text[1:-1])
            size += count
            if size >= MAX_BATCH:
                frames.append(head + ",".join(parts) + "]}")
                parts, size = [], 0
        if parts:
            frames.append(head + ",".join(parts) + "]}")
        self.outbox = []
        return frames


class StreamConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=4401)
            return
        self.user = user
        self.subscriptions = {}
        self.group_subs = {}
        self.flush_task = None
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username(), "streams": streams.names()})

    async def disconnect(self, code):
        for group in list(getattr(self, "group_subs", {})):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "flush_task", None):
            self.flush_task.cancel()

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "code": "invalid", "message": "Send a JSON object."})
            return
        action = content.get("action")
        sub_id = str(content.get("id", ""))[:64]
        if action == "subscribe":
            await self.subscribe(sub_id, content)
        elif action == "unsubscribe":
            await self.unsubscribe(sub_id)
        elif action == "ping":
            await self.send_json({"type": "pong", "id": sub_id})
        else:
            await self.send_json({"type": "error", "id": sub_id, "code": "invalid", "message": "Unknown action."})

    async def subscribe(self, sub_id, content):
        stream = streams.get(content.get("stream"))
        params = content.get("params") or {}
        since = content.get("since", 0)
        if not sub_id or sub_id in self.subscriptions:
            return await self._error(sub_id, "invalid", "Give each subscription a new id.")
        if stream is None:
            return await self._error(sub_id, "invalid", "Unknown stream.")
        if not isinstance(params, dict) or not isinstance(since, int) or since < 0:
            return await self._error(sub_id, "invalid", "params must be an object and since a whole number >= 0.")
        if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            return await self._error(sub_id, "invalid", "Too many subscriptions on one socket.")
        try:
            groups = await database_sync_to_async(self._authorise)(stream, params)
        except streams.StreamDenied as denied:
            return await self._error(sub_id, denied.code, str(denied))
        sub = Subscription(sub_id, stream, groups, since)
        self.subscriptions[sub_id] = sub
        for group in groups:
            if group not in self.group_subs:
                await self.channel_layer.group_add(group, self.channel_name)
            self.group_subs.setdefault(group, set()).add(sub_id)
        await self.send_json({"type": "subscribed", "id": sub_id, "stream": stream.name})
        if stream.ordered:
            backlog = await database_sync_to_async(stream.backlog)(self.user, params, since)
            for start in range(0, len(backlog), MAX_BATCH):
                sub.accept(backlog[start:start + MAX_BATCH])
            for message in sub.pending:
                sub.accept_batch(message)
            sub.pending = []
        sub.ready = True
        await self._flush_now(sub)

    def _authorise(self, stream, params):
        forget(self.user)  # role bindings may have changed since the socket opened
        return [streams.check_group(g) for g in stream.groups(self.user, params)]

    async def unsubscribe(self, sub_id):
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            return await self._error(sub_id, "invalid", "No such subscription.")
        for group in sub.groups:
            members = self.group_subs.get(group, set())
            members.discard(sub_id)
            if not members:
                self.group_subs.pop(group, None)
                await self.channel_layer.group_discard(group, self.channel_name)
        await self.send_json({"type": "unsubscribed", "id": sub_id})

    async def _error(self, sub_id, code, message):
        await self.send_json({"type": "error", "id": sub_id, "code": code, "message": message})

    # Channel layer handlers --------------------------------------------------------------

    async def stream_event(self, message):
        payload = message["payload"]
        self._dispatch(message["group"], {"raw": json.dumps([payload], separators=(",", ":")), "count": 1,
                                          "first": payload.get("seq"), "last": payload.get("seq")})

    async def stream_batch(self, message):
        self._dispatch(message["group"], message)

    def _dispatch(self, group, message):
        for sub_id in self.group_subs.get(group, ()):
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                continue
            if not sub.ready:
                sub.pending.append(message)
                continue
            sub.accept_batch(message)
        if self.flush_task is None or self.flush_task.done():
            self.flush_task = asyncio.ensure_future(self._flush_soon())

    async def _flush_soon(self):
        await asyncio.sleep(FLUSH_DELAY)
        for sub in list(self.subscriptions.values()):
            await self._flush_now(sub)

    async def _flush_now(self, sub):
        for frame in sub.take_frames():
            await self.send(text_data=frame)
