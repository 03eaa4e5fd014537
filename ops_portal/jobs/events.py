"""Job events: written to the database in bulk, in order, then published to the job's group.

All of a running job's database writes go through its EventWriter thread (one connection), so
target threads never touch the database and a 200-target job does not hold 200 connections.
"""
import logging
import queue
import threading
import time

from django.db import close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from ops_portal.core import streams

from . import groups
from .choices import EventKind
from .models import Job, JobEvent

log = logging.getLogger(__name__)
FLUSH_INTERVAL = 0.05
MAX_BATCH = 5000
PUBLISH_CHUNK = 1000
_STOP = object()


class EventWriter:
    def __init__(self, job):
        self.job_id = job.pk
        self.group = groups.job(job.pk)
        self.seq = job.last_seq
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"job-{job.pk}-events", daemon=True)
        self.failed = None
        self.stored = 0
        self._thread.start()

    # Producers (any thread) ---------------------------------------------------------------

    def emit(self, kind, text="", *, target=None, stream="", data=None):
        self._queue.put(("event", (timezone.now(), kind, target, stream, text, data)))

    def output(self, target, stream, line):
        self._queue.put(("event", (timezone.now(), EventKind.OUTPUT, target, stream, line, None)))

    def call(self, func):
        """Run func() in the writer thread, after every event emitted before it is stored."""
        self._queue.put(("call", func))

    def close(self, timeout=120):
        self._queue.put((_STOP, None))
        self._thread.join(timeout)
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

    def _run(self):
        stop = False
        while not stop:
            pending, calls_after = [], None
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
                if kind == "call":
                    calls_after = payload
                    break
                pending.append(payload)
                if len(pending) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if pending:
                self._store(pending)
            if calls_after is not None:
                close_old_connections()
                calls_after()

    def _store(self, pending):
        rows, payloads = [], []
        for when, kind, target, stream, text, data in pending:
            self.seq += 1
            rows.append(JobEvent(job_id=self.job_id, seq=self.seq, time=when, kind=kind, target=target,
                                 stream=stream, text=text, data=data))
            payload = {"seq": self.seq, "kind": kind, "time": when.timestamp(), "text": text}
            if target is not None:
                payload["target"] = target
            if stream:
                payload["stream"] = stream
            if data is not None:
                payload["data"] = data
            payloads.append(payload)
        with transaction.atomic():
            JobEvent.objects.bulk_create(rows, batch_size=2500)
            Job.objects.filter(pk=self.job_id).update(last_seq=F("last_seq") + len(rows))
        self.stored += len(rows)
        for start in range(0, len(payloads), PUBLISH_CHUNK):
            try:
                streams.publish_many(self.group, payloads[start:start + PUBLISH_CHUNK])
            except Exception:  # stored is what counts: clients catch up from the database
                log.warning("publishing events of job %s failed", self.job_id, exc_info=True)
