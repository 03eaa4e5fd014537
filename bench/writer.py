"""`python -m bench writer`: what one EventWriter flush costs, in this process (no worker, no daphne).

Evidence for the events and hosts figures: the job's EventWriter thread does all of a job's
database writes one after another, so its per-row and per-flush costs bound both the output rate
of a chatty job and how fast per-target results of a wide job are stored.

- rows: 100,000 output events stored three ways, in turn: the EventWriter's own _store() as this
  commit has it, Django bulk_create in batches of 5000 (what _store did before 14674fc), and
  PostgreSQL COPY (psycopg) written here;
- per flush: one publish to a job's group (streams.publish_many: async_to_sync, as the writer
  does it), one committed UPDATE (what each writer.call() costs at least), and a Redis PING for scale.
"""
import time

from . import runtime
from .runtime import fmt, median


def add_arguments(parser):
    parser.add_argument("--rows", type=int, default=100_000, help="rows per round (100000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each (3)")
    parser.add_argument("--calls", type=int, default=200, help="publish/commit calls timed (200)")


def main(args):
    import json

    runtime.setup_django()
    actor, _, environment = runtime.bench_user()
    import redis
    from django.db import connection, transaction
    from django.db.models import F
    from django.utils import timezone

    from ops_portal.core import streams
    from ops_portal.inventory.choices import Transport
    from ops_portal.inventory.models import Host
    from ops_portal.jobs import events
    from ops_portal.jobs.choices import EventKind
    from ops_portal.jobs.launch import launch_adhoc
    from ops_portal.jobs.models import Job, JobEvent

    Host.objects.create(name=f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-local", address="127.0.0.1",
                        transport=Transport.LOCAL, environment=environment)
    info = runtime.machine()

    def new_job():
        # Queued only: no worker runs in this benchmark (the message is purged at exit).
        return launch_adhoc(actor, environment=environment, action="host.command",
                                     values={"command": "true"}, selector={"all": True}, name="bench writer")

    rows = [(timezone.now(), EventKind.OUTPUT, 0, "stdout", f"{i} {time.time():.6f}", None)
            for i in range(1, args.rows + 1)]

    def orm(job):
        writer = events.EventWriter(job)
        writer._queue.put((events._STOP, None))
        writer._thread.join()
        for start in range(0, len(rows), events.MAX_BATCH):
            writer._store(rows[start:start + events.MAX_BATCH])

    def bulk(job):
        seq = 0
        for start in range(0, len(rows), events.MAX_BATCH):
            batch, objects, payloads = rows[start:start + events.MAX_BATCH], [], []
            for when, kind, target, stream, text, data in batch:
                seq += 1
                objects.append(JobEvent(job_id=job.pk, seq=seq, time=when, kind=kind, target=target, stream=stream,
                                        text=text, data=data))
                payloads.append({"seq": seq, "kind": kind, "time": when.timestamp(), "text": text,
                                 "target": target, "stream": stream})
            with transaction.atomic():
                JobEvent.objects.bulk_create(objects, batch_size=2500)
                Job.objects.filter(pk=job.pk).update(last_seq=F("last_seq") + len(batch))
            for first in range(0, len(payloads), events.PUBLISH_CHUNK):
                streams.publish_many(f"job.{job.pk}", payloads[first:first + events.PUBLISH_CHUNK])

    def copy(job):
        seq = 0
        table = connection.ops.quote_name(JobEvent._meta.db_table)
        for start in range(0, len(rows), events.MAX_BATCH):
            batch = rows[start:start + events.MAX_BATCH]
            payloads = []
            with transaction.atomic():
                with connection.cursor() as cursor:
                    with cursor.cursor.copy(f"COPY {table} (job_id, seq, time, kind, target, stream, text, data) "
                                            "FROM STDIN") as out:
                        for when, kind, target, stream, text, data in batch:
                            seq += 1
                            out.write_row((job.pk, seq, when, kind, target, stream, text,
                                           None if data is None else json.dumps(data)))
                            payloads.append({"seq": seq, "kind": kind, "time": when.timestamp(), "text": text,
                                             "target": target, "stream": stream})
                Job.objects.filter(pk=job.pk).update(last_seq=F("last_seq") + len(batch))
            for first in range(0, len(payloads), events.PUBLISH_CHUNK):
                streams.publish_many(f"job.{job.pk}", payloads[first:first + events.PUBLISH_CHUNK])

    ways = (("EventWriter._store (this commit)", orm), ("bulk_create (before 14674fc)", bulk), ("COPY", copy))
    results = {label: [] for label, _ in ways}
    print(f"writer: {args.rows} rows, {args.rounds} rounds each (load average {info['load_average_start']})")
    for _ in range(args.rounds):
        for label, func in ways:
            job = new_job()
            wall, cpu = time.perf_counter(), time.process_time()
            func(job)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            stored = JobEvent.objects.filter(job=job).count()
            results[label].append({"rows_per_s": stored / wall, "cpu_us_per_row": cpu / stored * 1e6,
                                   "load": runtime.load_average()})
            print(f"  {label:34} {stored / wall:8.0f} rows/s, {cpu / stored * 1e6:5.1f} µs CPU per row")

    job = new_job()
    client = redis.Redis.from_url(runtime.REDIS_URL)
    timings = {}
    for label, func in (
        ("publish_many (one writer flush)", lambda i: streams.publish_many(f"job.{job.pk}", [{"seq": i}])),
        ("committed UPDATE (one writer.call)", lambda i: _commit(transaction, Job, F, job.pk)),
        ("Redis PING", lambda i: client.ping()),
    ):
        samples = []
        for i in range(args.calls):
            started = time.perf_counter()
            func(i)
            samples.append((time.perf_counter() - started) * 1000)
        timings[label] = median(samples)
        print(f"  {label:34} {fmt(median(samples))} ms median over {args.calls}")
    client.close()
    summary = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "func"}, "rows": results,
               "per_call_ms": timings, "load_average_end": runtime.load_average()}
    for label, runs in results.items():
        summary[label] = {"rows_per_s": median([r["rows_per_s"] for r in runs]),
                          "cpu_us_per_row": median([r["cpu_us_per_row"] for r in runs])}
    print("  medians: " + ", ".join(f"{label} {fmt(summary[label]['rows_per_s'], 0)} rows/s "
                                    f"({fmt(summary[label]['cpu_us_per_row'], 1)} µs/row)" for label, _ in ways))
    print(f"  results: {runtime.save_results('writer', summary)}")
    return summary


def _commit(transaction, job_model, f, job_id):
    with transaction.atomic():
        job_model.objects.filter(pk=job_id).update(last_seq=f("last_seq") + 0)
