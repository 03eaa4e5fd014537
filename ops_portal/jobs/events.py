"""Job events: written to the database in bulk, in order, then published to the job's group.

All of a running job's database writes go through its EventWriter thread (one connection), so
target threads never touch the database and a 200-target job does not hold 200 connections.

A sliced job has one writer per slice, on different workers. Each flush reserves its seq numbers
from the job row (reserve_seqs: UPDATE ... RETURNING, first statement of its transaction): the row
lock it takes orders the writers' transactions, so seqs commit in increasing order and the job's
events stay one gapless stream. The live copies may still reach a socket out of order (each
writer publishes after its commit); the consumer fills such a gap from the database, where every
lower seq is committed by then.
"""
import json
import logging
import queue
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from ops_portal.core import streams, threads

from . import groups
from .choices import EventKind
from .models import Job, JobEvent

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.05
MAX_BATCH = 5000  # events a flush stores at most (setting JOB_EVENTS_MAX_BATCH)
PUBLISH_CHUNK = 1000
# Output lines read but not yet stored (setting JOB_EVENTS_MAX_UNSTORED). When the writer falls
# behind, the reading threads wait, so a command that prints faster than the portal stores slows
# down (as on a slow terminal) instead of growing the worker's memory and the live view's delay
# without bound.
MAX_UNSTORED_LINES = 10000
_STOP = object()
COPY_COLUMNS = ("job_id", "seq", "time", "kind", "target", "stream", "text", "data")


def _unmasked(text):
    return text


class EventWriter:
    def __init__(self, job):
        self.job_id = job.pk
        self.group = groups.job(job.pk)
        self._queue = queue.SimpleQueue()
        self._ended = threading.Event()
        self.failed = None
        self.stored = 0
        self.max_batch = getattr(settings, "JOB_EVENTS_MAX_BATCH", MAX_BATCH)
        self._room = threading.Semaphore(getattr(settings, "JOB_EVENTS_MAX_UNSTORED", MAX_UNSTORED_LINES))
        self.mask = _unmasked  # the runner sets one that hides the job's secret values
        # A thread the worker kept from an earlier job, if one is idle.
        threads.cache.spawn(self._loop, name=f"job-{job.pk}-events")

    # Producers (any thread) ---------------------------------------------------------------

    def emit(self, kind, text="", *, target=None, stream="", data=None):
        self._queue.put(("event", (timezone.now(), kind, target, stream, self.mask(text), data)))

    def output(self, target, stream, line):
        while not self._room.acquire(timeout=1.0):
            if self._ended.is_set():  # the writer died: do not wait for room forever
                return
        self._queue.put(("line", (timezone.now(), EventKind.OUTPUT, target, stream, self.mask(line), None)))

    def call(self, func):
        """Run func() in the writer thread, in the transaction that stores the events emitted before it."""
        self._queue.put(("call", func))

    def call_batched(self, func, item):
        """Like call(), for work that many targets share (their rows' updates, their hosts'
        reachability): func(items) runs once for the items queued since the last call(), in their
        order, before that call (and at the end of the flush). So what a call() does comes after
        every batched item queued before it and before every one queued after it; batched funcs
        of different kinds must not depend on each other's order."""
        self._queue.put(("batched", (func, item)))

    def close(self, timeout=120):
        self._queue.put((_STOP, None))
        self._ended.wait(timeout)
        if self.failed is not None:
            raise RuntimeError("writing job events failed") from self.failed

    # Writer thread ------------------------------------------------------------------------

    def _loop(self):
        try:
            self._run()
        except Exception as exc:  # keep the cause for close(); the runner marks the job failed
            log.exception("event writer for job %s failed", self.job_id)
            self.failed = exc
        finally:
            connection.close()
            self._ended.set()

    def _run(self):
        # Events and calls that arrive within FLUSH_INTERVAL go to the database in one transaction:
        # a call (a target's state, a host's reachability) no longer costs a commit of its own.
        stop = False
        while not stop:
            pending, calls, lines = [], [], 0
            try:
                item = self._queue.get(timeout=FLUSH_INTERVAL)
            except queue.Empty:
                continue
            deadline = time.monotonic() + FLUSH_INTERVAL
            while True:
                kind, payload = item
                if kind is _STOP:
                    stop = True
                    break
                if kind == "call" or kind == "batched":
                    calls.append((kind, payload))
                else:
                    pending.append(payload)
                    lines += kind == "line"
                if len(pending) >= self.max_batch:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if pending or calls:
                close_old_connections()
                self._store(pending, calls)
            if lines:
                self._room.release(lines)  # one call for the batch, not one a line

    def _store(self, pending, calls=()):
        rows, payloads = [], []
        with transaction.atomic():
            # Always, calls too: the job row is locked first in every writer's transaction (a
            # target's counters update it), the order the reaper and a slice's end take too.
            first = reserve_seqs(self.job_id, len(pending))
            if pending:
                for seq, (when, kind, target, stream, text, data) in enumerate(pending, start=first):
                    rows.append((self.job_id, seq, when, kind, target, stream, text, data))
                    payloads.append(JobEvent.wire(seq, kind, when, text, target, stream, data))
                insert_rows(rows)
            run_calls(calls)
        self.stored += len(rows)
        # Through the process's kept sender loop and its Redis connection (streams._Sender).
        for start in range(0, len(payloads), PUBLISH_CHUNK):
            try:
                streams.publish_many(self.group, payloads[start:start + PUBLISH_CHUNK])
            except Exception:  # stored is what counts: clients catch up from the database
                log.warning("publishing events of job %s failed", self.job_id, exc_info=True)


def run_calls(calls):
    """Run a flush's ("call", func) and ("batched", (func, item)) entries in order, each batched
    func once over its items since the previous plain call."""
    batched = {}
    for kind, payload in calls:
        if kind == "batched":
            func, item = payload
            batched.setdefault(func, []).append(item)
            continue
        for func, items in batched.items():
            func(items)
        batched = {}
        payload()
    for func, items in batched.items():
        func(items)


def reserve_seqs(job_id, count):
    """Take the next `count` seq numbers of the job; returns the first. Locks the job's row until
    the transaction ends, so call it first in a transaction (one lock order: the job row first)."""
    table = connection.ops.quote_name(Job._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET last_seq = last_seq + %s WHERE id = %s RETURNING last_seq",
                       [count, job_id])
        (last,) = cursor.fetchone()
    return last - count + 1


def insert_rows(rows):
    if rows and connection.vendor == "postgresql":
        _copy_rows(rows)
    elif rows:
        JobEvent.objects.bulk_create([
            JobEvent(job_id=job_id, seq=seq, time=when, kind=kind, target=target, stream=stream, text=text, data=data)
            for job_id, seq, when, kind, target, stream, text, data in rows], batch_size=2500)


def store_now(job, kind, text="", *, target=None, data=None):
    """Store one event of `job` (a Job, its row locked) in the current transaction, its seq
    reserved like a writer's (and kept on `job`, so a later job.save() keeps it), and publish it
    after commit: for what happens outside a runner (a slice lost, a sliced job's end)."""
    job_id = job.pk
    when = timezone.now()
    seq = reserve_seqs(job_id, 1)
    job.last_seq = seq
    insert_rows([(job_id, seq, when, kind, target, "", text, data)])
    payload = JobEvent.wire(seq, kind, when, text, target, "", data)
    group = groups.job(job_id)
    transaction.on_commit(lambda: streams.publish_many(group, [payload]))
    return seq


def _copy_rows(rows):
    """COPY the rows into the events table: a few microseconds a row, against ~55 for bulk_create,
    whose per-field preparation and client-side quoting dominate the writer thread."""
    table = connection.ops.quote_name(JobEvent._meta.db_table)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for job_id, seq, when, kind, target, stream, text, data in rows:
                copy.write_row((job_id, seq, when, kind, target, stream, text,
                                None if data is None else json.dumps(data)))
