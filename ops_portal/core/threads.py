"""Threads a process keeps between jobs, and bounded fan-out over them.

A job's targets run on threads, up to the job's parallelism. Starting a thread is not free: the
starter waits until the new thread runs, and on a busy machine that wait is for the GIL (its switch
interval is 5 ms) while the job's first targets already compete for it. A 50-host job on two busy
cores spent about 90 ms starting its 50 threads, the last target starting that much after the
first. So a worker keeps the threads a job used, idle, for the next job (as it keeps warm SSH
connections): handing work to an idle thread is a queue put. Idle threads end after
IDLE_SECONDS and at most MAX_IDLE are kept.

run_bounded(func, items, limit) is ThreadPoolExecutor(limit).map(func, items) on those threads:
`limit` lanes take the next item until none is left, the results come back in the items' order,
every item runs even when one raises, and the first exception (in the items' order) is raised
once all have ended.
"""
import logging
import os
import queue
import threading

from django.db import connections

log = logging.getLogger(__name__)

IDLE_SECONDS = 120.0
MAX_IDLE = 1024


class ThreadCache:
    def __init__(self, idle_seconds: float = IDLE_SECONDS, max_idle: int = MAX_IDLE, name: str = "kept"):
        self.idle_seconds = idle_seconds
        self.name = name
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle = []  # the inboxes of idle threads, the most recently idle last
        self.started = 0  # threads started so far (in this process)

    def spawn(self, func, name=None):
        """Run func() on an idle kept thread, or on a new one (named <name>-N) when none is idle;
        with `name`, the thread goes by it while func runs (a job's lane, writer, supervisor)."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put((func, name))
            return
        inbox = queue.SimpleQueue()
        inbox.put((func, name))
        with self._lock:
            self.started += 1
            thread_name = f"{self.name}-{self.started}"
        threading.Thread(target=self._serve, args=(inbox,), name=thread_name, daemon=True).start()

    def idle(self):
        with self._lock:
            return len(self._idle)

    def _serve(self, inbox):
        thread = threading.current_thread()
        own_name = thread.name
        func, name = inbox.get()
        while True:
            thread.name = name or own_name
            try:
                func()
            except BaseException:  # noqa: BLE001 — work handed here reports its own errors; keep the thread
                log.exception("work on a kept thread raised")
            thread.name = own_name
            func = name = None
            with self._lock:
                if len(self._idle) >= self.max_idle:
                    return
                self._idle.append(inbox)
            try:
                func, name = inbox.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    try:
                        self._idle.remove(inbox)
                    except ValueError:  # handed work just as it timed out: that work is in the inbox
                        pass
                    else:
                        return
                func, name = inbox.get()

    def _forget(self):
        """In a forked child: the parent's threads do not exist here."""
        self._lock = threading.Lock()
        self._idle = []
        self.started = 0


cache = ThreadCache()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=cache._forget)


def run_bounded(func, items, limit, *, name="lane", threads=None):
    """[func(item) for item in items], at most `limit` at once, on kept threads (see the module's
    docstring). A lane closes the database connections its thread opened before the thread goes
    back to idle."""
    items = list(items)
    if not items:
        return []
    threads = threads or cache
    results = [None] * len(items)
    errors = {}
    lock = threading.Lock()
    state = {"next": 0, "running": 1}  # the caller holds one count until every lane is handed out
    done = threading.Event()

    def take():
        with lock:
            index = state["next"]
            state["next"] += 1
        return index if index < len(items) else None

    def ended():
        with lock:
            state["running"] -= 1
            if state["running"] == 0:
                done.set()

    def lane():
        try:
            while (index := take()) is not None:
                try:
                    results[index] = func(items[index])
                except BaseException as exc:  # noqa: BLE001 — raised to the caller once all have ended
                    errors[index] = exc
        finally:
            connections.close_all()
            ended()

    lanes = min(max(1, int(limit)), len(items))
    for number in range(lanes):
        with lock:
            state["running"] += 1
        try:
            threads.spawn(lane, name=f"{name}_{number}")
        except RuntimeError:  # the system has no more threads: the lanes already running take every item
            ended()
            if number == 0:
                raise
            log.warning("%s: %d of %d lanes started (no more threads)", name, number, lanes)
            break
    ended()
    done.wait()
    if errors:
        raise errors[min(errors)]
    return results
