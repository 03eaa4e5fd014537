"""Follow one engine's event stream: reconnect with capped backoff, resync fully on every (re)connect
and on a period, keep a heartbeat.

    watcher = EventWatcher(spec, on_event, on_resync, cancel, resync_every=300)
    watcher.start()               # a daemon thread; or watcher.run() in the caller's own thread
    ...                           # watcher.heartbeat: time.time() of the last sign of life
    cancel.cancel(); watcher.join()

Callbacks run in the watcher's thread, one at a time and in order: `on_resync(client, reason)`
with reason "connect", "reconnect" or "period", then `on_event(event, client)` for each Event.
On a (re)connect the stream is opened first and the resync done second, so nothing that
happens during the resync is missed; events that trail the resync may repeat what it saw
(consumers treat both as idempotent). After a reconnect, events from REPLAY_MARGIN before the
newest one seen are replayed from the engine's buffer and the ones already handed over dropped,
so short outages lose no history. A callback that raises is logged and counted; the watcher
carries on.

The engine's event times are not in order: concurrent operations stamp their events before
the engine serialises them (a container's `die` can follow another's `kill` with a time a few
milliseconds older), Swarm events carry the time of the object's last change, and the wall clock
can step back. Events are therefore never dropped for being older than another one; only an
exact repeat (same time, kind, actor, action) of a recent event is, which is what a replay brings.

Liveness: a stream can hang silently (a half-dead TCP or SSH peer), so the watcher pings the
engine every `ping_every` seconds on a second connection; a failed ping counts as a lost
connection. The heartbeat moves on every event and every successful ping. `tick` is the loop's
own sign of life (the thread, not the engine): `alive(stalled_after)` is false when the thread
ended or has not come round its loop for that long (a callback stuck), for a supervisor to act on.
"""
import collections
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass, field

from ..base import CancelToken
from .engine import EngineError, connect, explain
from .transport import close_stream

log = logging.getLogger(__name__)
_END = object()
REPLAY_MARGIN_NS = 5_000_000_000  # a reconnect asks for events from 5 s before the newest one seen
RECENT_EVENTS = 4096  # keys kept to recognise what a replay repeats (the engine buffers 256 events)


@dataclass
class Event:
    """One engine event: (kind, id, action) and what came with it."""

    kind: str  # container, image, network, volume, service, node, secret, config, daemon, plugin
    id: str
    action: str  # start, die, kill, stop, pause, health_status, exec_start, create, update, remove …
    detail: str = ""  # "healthy" for health_status, the command for exec_*, "" otherwise
    name: str = ""  # Actor.Attributes.name when present
    attributes: dict = field(default_factory=dict)
    time: float = 0.0  # seconds since the epoch, to the nanosecond the engine gives
    time_nano: int = 0
    scope: str = ""  # local or swarm


def map_event(raw: dict) -> Event:
    """Turn the engine's JSON event into an Event."""
    actor = raw.get("Actor") or {}
    attributes = dict(actor.get("Attributes") or {})
    action, _, detail = (raw.get("Action") or raw.get("status") or "").partition(":")
    nano = int(raw.get("timeNano") or int(raw.get("time") or 0) * 1_000_000_000)
    return Event(kind=raw.get("Type") or "container", id=actor.get("ID") or raw.get("id") or "",
                 action=action.strip(), detail=detail.strip(), name=attributes.get("name", ""),
                 attributes=attributes, time=nano / 1e9, time_nano=nano, scope=raw.get("scope", ""))


class EventWatcher:
    """Follow an engine's events for as long as `cancel` is not set."""

    def __init__(self, spec, on_event, on_resync, cancel: CancelToken | None = None, *, resync_every=300.0,
                 ping_every=5.0, backoff_initial=0.5, backoff_max=30.0, connect_timeout=10.0, filters=None,
                 connect=connect, on_state=None):
        self.spec, self.on_event, self.on_resync = spec, on_event, on_resync
        self.cancel = cancel or CancelToken()
        self.resync_every, self.ping_every = resync_every, ping_every
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.connect_timeout, self.filters = connect_timeout, filters
        self._connect, self.on_state = connect, on_state
        self.heartbeat = 0.0  # time.time() of the last event or successful ping; 0 before the first
        self.connected = False
        self.connects = 0  # successful (re)connects
        self.failures = 0  # consecutive failed attempts (drives the backoff)
        self.callback_errors = 0
        self.last_error = ""
        self.events = 0  # events handed to on_event
        self.repeats = 0  # replayed events dropped as already handed over
        self.client = None
        self.tick = time.monotonic()  # the loop's last sign of life
        self.resyncing = False  # on_resync is running
        self._stream = None
        self._newest_nano = 0
        self._recent = collections.OrderedDict()  # keys of the last RECENT_EVENTS events, oldest first
        self._thread = None

    # -- thread control ---------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self.run, name=f"events-{self.spec.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, reason="stopped"):
        self.cancel.cancel(reason)
        stream = self._stream
        if stream is not None:
            close_stream(stream)

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self, stalled_after=120.0, resync_stalled_after=None):
        """Is the thread running and coming round its loop (not ended, not stuck in a callback)?
        A resync of a large engine legitimately takes longer: it has `resync_stalled_after`
        (default ten times `stalled_after`)."""
        if self._thread is None or not self._thread.is_alive():
            return False
        limit = (resync_stalled_after or 10 * stalled_after) if self.resyncing else stalled_after
        return time.monotonic() - self.tick < limit

    def backoff(self, attempt):
        """Seconds to wait before attempt n (1-based): doubling from backoff_initial, capped, ±20 % jitter."""
        delay = min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))
        return delay * random.uniform(0.8, 1.2)

    # -- the loop ------------------------------------------------------------------------

    def run(self):
        while not self.cancel.is_set():
            self.tick = time.monotonic()
            try:
                self._session()
            except EngineError as exc:
                self._lost(str(exc))
            except Exception as exc:  # the SDK, requests or a socket: the connection is gone
                self._lost(str(explain(self.spec, exc)))
            if self.cancel.is_set():
                break
            self.failures += 1
            self._pause(self.backoff(self.failures))
        self._set_state(False, self.cancel.reason or "stopped")

    def _session(self):
        client = self._connect(self.spec, self.connect_timeout)
        events = queue.Queue()
        stream = None
        try:
            self.client = client
            since = None
            if self._newest_nano:
                nano = max(0, self._newest_nano - REPLAY_MARGIN_NS)
                since = f"{nano // 1_000_000_000}.{nano % 1_000_000_000:09d}"
            stream = client.api.events(decode=True, since=since, filters=self.filters)
            self._stream = stream
            threading.Thread(target=self._read, args=(stream, events), name=f"events-read-{self.spec.name}",
                             daemon=True).start()
            if self.cancel.is_set():
                return
            self.connects += 1
            self._beat()
            self._set_state(True, "")
            self._resync(client, "connect" if self.connects == 1 else "reconnect")
            self.failures = 0
            self._follow(client, events)
        finally:
            self._stream = None
            if self.client is client:
                self.client = None
            if stream is not None:
                close_stream(stream)
            client.close()

    def _follow(self, client, events):
        now = time.monotonic()
        next_resync, next_ping = now + self.resync_every, now + self.ping_every
        while not self.cancel.is_set():
            self.tick = time.monotonic()
            wait = max(0.0, min(next_resync, next_ping) - time.monotonic())
            try:
                item = events.get(timeout=min(wait, 1.0))
            except queue.Empty:
                item = None
            if isinstance(item, tuple) and item[0] is _END:
                raise item[1] or EngineError(self.spec.name, "unreachable",
                                             f"engine {self.spec.name}: the event stream ended")
            if item is not None:
                self._beat()
                event = map_event(item)
                if self._fresh(event):
                    self._callback(self.on_event, event, client)
            now = time.monotonic()
            if now >= next_ping:
                client.ping()  # raises when the engine is gone; the stream may not notice for long
                self._beat()
                next_ping = now + self.ping_every
            if now >= next_resync:
                self._resync(client, "period")
                next_resync = time.monotonic() + self.resync_every

    def _read(self, stream, events):
        error = None
        try:
            for raw in stream:
                events.put(raw)
        except Exception as exc:
            error = exc
        finally:  # whatever ended the reader, the loop hears of it and reconnects
            events.put((_END, error))

    # -- helpers ---------------------------------------------------------------------------

    def _fresh(self, event):
        """False for an exact repeat of a recent event (what a replay after a reconnect brings).

        Never judged by time: the engine's event times are not in order (see the module's doc)."""
        key = (event.time_nano, event.kind, event.id, event.action, event.detail)
        if key in self._recent:
            self.repeats += 1
            return False
        self._recent[key] = None
        if len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        self._newest_nano = max(self._newest_nano, event.time_nano)
        self.events += 1
        return True

    def _resync(self, client, reason):
        self.resyncing = True
        try:
            self._callback(self.on_resync, client, reason)
        finally:
            self.resyncing = False
            self.tick = time.monotonic()

    def _callback(self, func, *args):
        try:
            func(*args)
        except Exception:
            self.callback_errors += 1
            log.exception("engine %s: %s failed", self.spec.name, getattr(func, "__name__", "callback"))

    def _pause(self, seconds):
        """Wait before the next attempt, coming round often enough for `tick` to stay current."""
        deadline = time.monotonic() + seconds
        while not self.cancel.is_set() and (left := deadline - time.monotonic()) > 0:
            self.tick = time.monotonic()
            self.cancel.wait(min(left, 1.0))

    def _beat(self):
        self.heartbeat = time.time()

    def _lost(self, message):
        if not self.cancel.is_set():
            self.last_error = message
            # One warning per outage; the retries that follow it say the same.
            log.log(logging.WARNING if self.failures == 0 else logging.DEBUG,
                    "engine %s: event stream lost: %s", self.spec.name, message)
        self._set_state(False, message)

    def _set_state(self, connected, message):
        changed = connected != self.connected
        self.connected = connected
        if self.on_state is not None and (changed or message):
            try:
                self.on_state(connected, message)
            except Exception:
                log.exception("engine %s: on_state failed", self.spec.name)
