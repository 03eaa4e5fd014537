"""The one websocket endpoint (/ws/): authenticate on connect, then subscribe to streams.

Client -> server:
    {"action": "subscribe", "id": "s1", "stream": "status", "params": {...}, "since": 0}
    {"action": "unsubscribe", "id": "s1"}
Server -> client:
    {"type": "subscribed", "id": "s1"} | {"type": "error", "id": "s1", "code": ..., "message": ...}
    {"type": "events", "id": "s1", "items": [event, ...]}

The socket is refused (closed before accept) without a signed-in user or a valid token. Each
subscription is authorised through the permission layer with fresh role bindings. Authority is
checked again while the socket is open: at once when accounts.authority announces a change (a
binding, a team, the user, a token, a sign-out), before each subscription, and before delivering
events when the last check is older than AUTH_RECHECK_SECONDS. A credential that no longer holds
closes the socket with 4401; a subscription the user may no longer see ends with a "forbidden"
error and its groups are left. Ordered streams
deliver the backlog after `since`, then live events, with no gap and no duplicate. Events are
batched per subscription (a few milliseconds) so bursts become few messages, never dropped ones. A published
batch is JSON-encoded once by its publisher and forwarded as it is to every subscriber.
"""
import asyncio
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ops_portal.accounts import authority

from . import streams
from .ws_auth import current_user

log = logging.getLogger(__name__)
FLUSH_DELAY = 0.02
MAX_BATCH = 2000
BACKLOG_PAGE = 5000  # events of an ordered stream's backlog read and sent at a time
MAX_SUBSCRIPTIONS = 50
# Longest time events flow to a socket on authority checked this long ago. Changes are announced
# at once (accounts.authority); this bounds what a lost announcement can leak.
AUTH_RECHECK_SECONDS = 5
# While events flow, the check is renewed in the background this long after the last one, so a
# flush finds it fresh and never waits for the database: with every socket's check due at once,
# the checks queue on daphne's one database thread (20 sockets: a few hundred ms of stall).
AUTH_RENEW_SECONDS = 4
REVOKED = 4401  # close code: the credential no longer holds (revoked, expired, signed out, deactivated)


class Subscription:
    def __init__(self, sub_id, stream, params, groups, since):
        self.id = sub_id
        self.stream = stream
        self.params = params
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
        self.credential = self.scope.get("credential")
        if user is None or not user.is_authenticated or not user.is_active or self.credential is None:
            await self.close(code=REVOKED)
            return
        self.user = user
        self.subscriptions = {}
        self.group_subs = {}
        self.flush_task = None
        self.renew_task = None
        self.closed = False
        self.checked_at = time.monotonic()
        self.check_lock = asyncio.Lock()
        self.forced_checks = 0  # checks asked for by a change, waiting or under way
        self.auth_group = authority.group(user.pk)
        await self.channel_layer.group_add(self.auth_group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username(), "streams": streams.names()})

    async def disconnect(self, code):
        self.closed = True
        groups = list(getattr(self, "group_subs", {}))
        if getattr(self, "auth_group", None):
            groups.append(self.auth_group)
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "flush_task", None):
            self.flush_task.cancel()
        if getattr(self, "renew_task", None):
            self.renew_task.cancel()

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
        if groups is None:
            return await self._revoke()
        sub = Subscription(sub_id, stream, params, groups, since)
        self.subscriptions[sub_id] = sub
        await self._join(sub, groups)
        await self.send_json({"type": "subscribed", "id": sub_id, "stream": stream.name})
        if stream.ordered:
            # Page by page, each sent before the next is read: a client sees the first lines of a
            # long log at once instead of after the whole of it was read and encoded.
            while not self.closed and sub_id in self.subscriptions:
                page = await database_sync_to_async(stream.backlog)(self.user, params, sub.last_seq, BACKLOG_PAGE)
                for start in range(0, len(page), MAX_BATCH):
                    sub.accept(page[start:start + MAX_BATCH])
                await self._flush_now(sub)
                if len(page) < BACKLOG_PAGE:
                    break
            for message in sub.pending:
                await self._fill_gap(sub, message)
                sub.accept_batch(message)
            sub.pending = []
        sub.ready = True
        await self._flush_now(sub)

    def _authorise(self, stream, params):
        """Groups to join, or None when the socket's credential no longer holds (sync)."""
        user = current_user(self.credential, self.user.pk)  # fresh: no cached role bindings
        if user is None:
            return None
        self.user = user
        return [streams.check_group(g) for g in stream.groups(user, params)]

    async def unsubscribe(self, sub_id):
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            return await self._error(sub_id, "invalid", "No such subscription.")
        await self._leave(sub, sub.groups)
        await self.send_json({"type": "unsubscribed", "id": sub_id})

    async def _join(self, sub, groups):
        for group in groups:
            if group not in self.group_subs:
                await self.channel_layer.group_add(group, self.channel_name)
            self.group_subs.setdefault(group, set()).add(sub.id)
        sub.groups = list(dict.fromkeys([*sub.groups, *groups]))

    async def _leave(self, sub, groups):
        for group in groups:
            members = self.group_subs.get(group, set())
            members.discard(sub.id)
            if not members:
                self.group_subs.pop(group, None)
                await self.channel_layer.group_discard(group, self.channel_name)
        sub.groups = [g for g in sub.groups if g not in groups]

    # Authority while open ----------------------------------------------------------------

    def _reauthorise(self, subs):
        """(fresh user or None, {sub_id: groups now, or None when denied}) (sync)."""
        user = current_user(self.credential, self.user.pk)
        if user is None:
            return None, {}
        verdicts = {}
        for sub_id, stream, params in subs:
            try:
                verdicts[sub_id] = [streams.check_group(g) for g in stream.groups(user, params)]
            except streams.StreamDenied:
                verdicts[sub_id] = None
        return user, verdicts

    async def _recheck(self, max_age=None):
        """Check the credential and every subscription again (unless checked within max_age
        seconds); False when the socket was closed. A check asked for because something changed
        (max_age None) holds back every flush until it is done; a fresh routine check does not
        wait for a renewal under way."""
        if (max_age is not None and not self.forced_checks and not self.closed
                and time.monotonic() - self.checked_at <= max_age):
            return True
        if max_age is None:
            self.forced_checks += 1
        try:
            return await self._check(max_age)
        finally:
            if max_age is None:
                self.forced_checks -= 1

    async def _check(self, max_age):
        async with self.check_lock:  # also waits for a check under way
            if self.closed:
                return False
            if max_age is not None and time.monotonic() - self.checked_at <= max_age:
                return True
            subs = [(sub.id, sub.stream, sub.params) for sub in self.subscriptions.values()]
            user, verdicts = await database_sync_to_async(self._reauthorise)(subs)
            if user is None:
                await self._revoke()
                return False
            self.user = user
            for sub_id, groups in verdicts.items():
                sub = self.subscriptions.get(sub_id)
                if sub is None:
                    continue
                if groups is None:
                    del self.subscriptions[sub_id]
                    await self._leave(sub, list(sub.groups))
                    await self._error(sub_id, "forbidden", "Your access changed: this subscription has ended.")
                    continue
                await self._leave(sub, [g for g in sub.groups if g not in groups])
                await self._join(sub, groups)
            self.checked_at = time.monotonic()
            return True

    async def _revoke(self):
        if not self.closed:
            self.closed = True
            for sub in self.subscriptions.values():
                sub.outbox = []
            self.subscriptions = {}
            await self.close(code=REVOKED, reason="Your sign-in is no longer valid.")

    async def auth_changed(self, message):
        """accounts.authority: something about this user changed; look again now."""
        kind, ref = self.credential
        if (kind == "token" and message.get("token") == ref) or (
                kind == "session" and message.get("session") == authority.session_digest(ref)):
            return await self._revoke()  # this very credential was revoked or signed out
        await self._recheck()

    async def _error(self, sub_id, code, message):
        await self.send_json({"type": "error", "id": sub_id, "code": code, "message": message})

    # Channel layer handlers --------------------------------------------------------------

    async def stream_event(self, message):
        payload = message["payload"]
        await self._dispatch(message["group"], {"raw": json.dumps([payload], separators=(",", ":")), "count": 1,
                                                "first": payload.get("seq"), "last": payload.get("seq")})

    async def stream_batch(self, message):
        await self._dispatch(message["group"], message)

    async def _dispatch(self, group, message):
        for sub_id in list(self.group_subs.get(group, ())):
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                continue
            if not sub.ready:
                sub.pending.append(message)
                continue
            await self._fill_gap(sub, message)
            sub.accept_batch(message)
        if self.flush_task is None or self.flush_task.done():
            self.flush_task = asyncio.ensure_future(self._flush_soon())
        if self.renew_task is None or self.renew_task.done():
            self.renew_task = asyncio.ensure_future(self._renew_soon())

    async def _renew_soon(self):
        """Renew the authority check before a flush would have to wait for it (events are flowing)."""
        due = AUTH_RENEW_SECONDS - (time.monotonic() - self.checked_at)
        if due > 0:
            await asyncio.sleep(due)
        await self._recheck(max_age=AUTH_RENEW_SECONDS)

    async def _fill_gap(self, sub, message):
        """Events of an ordered stream that skip ahead (several writers publish one job's events,
        each after its own commit, so the live copies can cross): read the missing ones from the
        database first, where every lower seq is committed by then (jobs.events.reserve_seqs)."""
        first = message.get("first")
        if not sub.stream.ordered or first is None:
            return
        while sub.last_seq + 1 < first:
            try:
                page = await database_sync_to_async(sub.stream.backlog)(
                    self.user, sub.params, sub.last_seq, min(first - 1 - sub.last_seq, BACKLOG_PAGE))
            except streams.StreamDenied:
                return
            page = [p for p in page if p.get("seq", 0) < first]
            if not page:
                return
            sub.accept(page)

    async def _flush_soon(self):
        await asyncio.sleep(FLUSH_DELAY)
        if not await self._recheck(max_age=AUTH_RECHECK_SECONDS):
            return
        for sub in list(self.subscriptions.values()):
            await self._flush_now(sub)

    async def _flush_now(self, sub):
        for frame in sub.take_frames():
            await self.send(text_data=frame)
