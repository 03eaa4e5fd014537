"""The container watcher: one backend EventWatcher per enabled engine, kept in step with the engine
rows, writing what the engines report into the database (sync.py) and telling the browsers.

    Supervisor().run(stop)     # manage.py container_watcher

Every POLL seconds the supervisor reads the enabled engines: new ones get a watcher, removed or
disabled ones lose theirs, and one whose address or credentials changed is reconnected. Each
EventWatcher reconnects with capped backoff and resyncs fully on every (re)connect and every
CONTAINERS_RESYNC_SECONDS; a down or refused engine is stored with its state in plain words.
Service refreshes are batched by a flusher thread per engine (a few times a second).

Liveness is the streams', not only the process's: every poll the supervisor checks each engine's
event-stream thread (ended, or not round its loop for STALLED_AFTER seconds: a callback stuck)
and its flusher. While all are well it writes the heartbeat (Redis, with each engine's stream
in the payload), which /readyz and `manage.py healthcheck watcher` read; when one is not, the
heartbeat is removed at once (not ready), the error logged, and the engine's watch replaced by a
new one (a stuck thread is cancelled and left to end when it wakes). The next poll with every
stream well writes the heartbeat again.

Run one watcher per deployment: two would do the same work twice (harmlessly: every write is an
idempotent upsert).
"""
import logging
import socket
import threading

from django.conf import settings
from django.db import close_old_connections

from ops_portal.core import heartbeat
from schedulers import container as backend
from schedulers.base import CancelToken

from . import engines as engine_rows
from .choices import EngineState
from .models import Engine
from .sync import EngineSync

log = logging.getLogger(__name__)
POLL = 2.0
FLUSH = 0.25
# Seconds without a turn of the stream's loop before it counts as stuck: handling one event takes
# milliseconds (seconds on a machine at load 40); a resync has ten times longer (250 containers: ~1 s).
STALLED_AFTER = 120.0
KIND = "watcher"


def name():
    return f"{KIND}@{socket.gethostname()}"


class EngineWatch:
    """One engine followed: its EventWatcher (thread), its EngineSync and a flusher thread."""

    def __init__(self, engine, *, resync_every=None, backoff_max=30.0, ping_every=5.0):
        self.engine_id = engine.pk
        self.fingerprint = engine_rows.spec_fingerprint(engine)
        self.sync = EngineSync(engine.pk)
        self.last_error = None
        self.stopped = threading.Event()
        self.watcher = backend.EventWatcher(
            engine_rows.engine_spec(engine), self.on_event, self.on_resync, CancelToken(),
            resync_every=resync_every or settings.CONTAINERS_RESYNC_SECONDS, ping_every=ping_every,
            backoff_max=backoff_max, connect_timeout=engine_rows.CONNECT_TIMEOUT, connect=self._connect,
            on_state=self.on_state)
        self.flusher = threading.Thread(target=self._flush_loop, name=f"flush-{engine.name}", daemon=True)

    def start(self):
        self.watcher.start()
        self.flusher.start()
        return self

    def stop(self):
        self.stopped.set()
        self.watcher.stop("engine no longer watched")

    def join(self, timeout=10):
        self.watcher.join(timeout)
        self.flusher.join(timeout)

    def problem(self, stalled_after=STALLED_AFTER):
        """Why this watch no longer follows its engine ("" when it does): a thread ended or is stuck.
        An engine that is down is not a problem of the watch: it retries, and the engine row says so."""
        thread = self.watcher._thread
        if thread is None or not thread.is_alive():
            return "its event stream thread ended"
        if not self.watcher.alive(stalled_after):
            return f"its event stream thread is stuck (no turn of its loop for {stalled_after:.0f} s)"
        if not self.flusher.is_alive():
            return "its flusher thread ended"
        return ""

    def status(self):
        """What the heartbeat says of this engine's stream."""
        watcher = self.watcher
        return {"connected": watcher.connected, "events": watcher.events, "connects": watcher.connects,
                "callback_errors": watcher.callback_errors, "last_sign": round(watcher.heartbeat, 3),
                "error": watcher.last_error if not watcher.connected else ""}

    # Callbacks (the EventWatcher's thread) ------------------------------------------------

    def _connect(self, spec, timeout):
        try:
            return backend.connect(spec, timeout)
        except backend.EngineError as exc:
            self.last_error = exc
            raise

    def on_resync(self, client, reason):
        close_old_connections()
        try:
            result, info = self.sync.resync(client)
        except Exception as exc:
            if not backend.is_engine_failure(exc):
                raise
            # The engine went away mid-resync: the stream ends too, and the reconnect resyncs.
            log.warning("engine %s: resync on %s stopped: %s", self.engine_id, reason,
                        backend.explain(self.watcher.spec, exc))
            return
        state = EngineState.DEGRADED if info.problems else EngineState.OK
        engine_rows.note(self.engine_id, state=state, error="; ".join(info.problems), info=info, synced=True)
        log.info("engine %s: resynced on %s (%s containers, %s services)", self.engine_id, reason,
                 result and result["containers"], result and result["services"])

    def on_event(self, event, client):
        close_old_connections()
        try:
            self.sync.event(event, client)
        except Exception as exc:
            if not backend.is_engine_failure(exc):
                raise
            # The engine is going away (a stop emits events it can no longer answer about).
            log.warning("engine %s: %s %s %s not refreshed: %s", self.engine_id, event.kind, event.action,
                        event.id[:12], backend.explain(self.watcher.spec, exc))

    def on_state(self, connected, message):
        close_old_connections()
        if connected:
            self.last_error = None
            return
        if self.stopped.is_set():
            return
        engine_rows.note_error(self.engine_id, self.last_error or backend.EngineError("?", "unreachable", message))

    # Flusher ----------------------------------------------------------------------------------

    def _flush_loop(self):
        while not self.stopped.wait(FLUSH):
            client = self.watcher.client
            if client is None or not (self.sync.dirty or self.sync.lists):
                continue
            try:
                close_old_connections()
                self.sync.flush(client)
            except Exception as exc:  # the engine went away mid-refresh: the next resync catches up
                log.warning("engine %s: refresh failed: %s", self.engine_id, exc)


class Supervisor:
    """Keep one working EngineWatch per enabled engine; heartbeat in Redis while every stream is well."""

    def __init__(self, *, poll=POLL, stalled_after=STALLED_AFTER, **watch_options):
        self.poll = poll
        self.stalled_after = stalled_after
        self.watch_options = watch_options
        self.watches = {}
        self.restarts = {}  # engine id: watches replaced because a thread ended or stuck
        self._beat_failing = False

    def reconcile(self):
        """Start, stop and restart watches to match the enabled engines; return the watched ids."""
        close_old_connections()
        wanted = {e.pk: e for e in Engine.objects.filter(enabled=True).select_related("host__credential")}
        for pk in list(self.watches):
            engine = wanted.get(pk)
            if engine is None or engine_rows.spec_fingerprint(engine) != self.watches[pk].fingerprint:
                log.info("engine %s: %s", pk, "no longer watched" if engine is None else "changed: reconnecting")
                self.watches.pop(pk).stop()
        for pk, engine in wanted.items():
            if pk not in self.watches:
                log.info("engine %s (%s): watching %s", pk, engine.name, engine.url)
                self.watches[pk] = EngineWatch(engine, **self.watch_options).start()
        return set(self.watches)

    def problems(self):
        """{engine id: why} for every watch whose stream thread or flusher ended or is stuck."""
        found = {}
        for pk, watch in list(self.watches.items()):
            problem = watch.problem(self.stalled_after)
            if problem:
                found[pk] = problem
        return found

    def beat(self):
        """Write the heartbeat if every stream is well, remove it if not; return the problems."""
        problems = self.problems()
        try:
            if problems:
                heartbeat.forget(KIND, name())
            else:
                heartbeat.beat_once(KIND, name(), streams={str(pk): watch.status()
                                                           for pk, watch in self.watches.items()})
        except Exception as exc:  # Redis away: readiness shows it; say so once per outage
            if not self._beat_failing:
                log.warning("watcher: heartbeat to Redis failed: %s", exc)
            self._beat_failing = True
        else:
            if self._beat_failing:
                log.warning("watcher: heartbeat to Redis works again")
            self._beat_failing = False
        return problems

    def replace(self, problems):
        """Give each engine with a problem a new watch (the old one cancelled: a stuck thread ends when
        it wakes; both write idempotent upserts meanwhile)."""
        for pk, problem in problems.items():
            watch = self.watches.pop(pk, None)
            if watch is None:
                continue
            self.restarts[pk] = self.restarts.get(pk, 0) + 1
            log.error("engine %s: %s; watching it again (restart %s)", pk, problem, self.restarts[pk])
            watch.stop()
        if problems:
            self.reconcile()

    def run(self, stop: threading.Event):
        try:
            while not stop.is_set():
                try:
                    self.reconcile()
                    self.replace(self.beat())
                except Exception:  # the database is away: keep the watches, try again
                    log.exception("watcher: reading the engines failed")
                stop.wait(self.poll)
        finally:
            try:
                heartbeat.forget(KIND, name())
            except Exception:  # Redis away: the heartbeat expires on its own
                log.warning("watcher: could not remove the heartbeat")
            self.stop_all()

    def stop_all(self):
        watches, self.watches = list(self.watches.values()), {}
        for watch in watches:
            watch.stop()
        for watch in watches:
            watch.join(5)
