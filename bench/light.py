"""`python -m bench light`: `uname -a` on 1,000-5,000 light hosts through the portal vs the bare backend (issue 15).

Light hosts (fleet/light.py): one asyncssh process serving every host on its own 127.0.0.1 port with
its own host key, so thousands of targets go through the real SSH backend on this machine. For each
size, in the same run:

- portal: host.command `uname -a` launched with the service layer (strategy parallel, --limit), timed
  from the launch call until the job's end in the database (runtime.follow_job), with the Celery
  worker's CPU (user + system, its process tree) and its peak RSS (sampled every 50 ms);
- the floor: schedulers.host.SSHPool + run_command on --limit threads in this process, cold (a new
  pool, handshakes included): the same backend without the job machinery, with its CPU;
- the database: the job's rows (its JobTargets, JobEvents, and the audit rows written from launch to
  completion), their bytes (pg_column_size of each row) and the growth of the three tables with their
  indexes (pg_total_relation_size, page-granular), per target;
- the light server's own CPU per target, during the portal run and during the floor run;
- with --slices K --workers K (K > 1): the same job sliced (strategy "slices": K) over K more
  workers (concurrency 1 each) on a queue of their own, timed the same way, with the CPU of all K
  workers' process trees: against the one-worker run above. The hosts are moved to a bench site
  for that run (its queue site.<name>, served only by the K workers) and back after it, by a direct
  update (not audited: bench data).
"""
import logging
import time

from . import runtime
from .hosts import fabric_pool_run, portal_run, ssh_targets
from .runtime import fmt, median


def add_arguments(parser):
    parser.add_argument("--sizes", default="1000,5000", help="target counts (1000,5000)")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of each measurement (1)")
    parser.add_argument("--limit", type=int, default=50, help="parallel targets: portal limit and floor threads (50)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency (2)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds a portal job may take (3600)")
    parser.add_argument("--slices", type=int, default=1, help="also run the job in this many slices (1: not)")
    parser.add_argument("--workers", type=int, default=None, help="workers for the sliced run (--slices)")


def register(actor, environment, light, count):
    """Register count light hosts through the inventory service (audited, host key pinned), in batches."""
    from pathlib import Path

    from django.db import transaction

    from ops_portal.inventory import services as inventory

    credential = inventory.create_credential(actor, name=f"{runtime.NAME_PREFIX}{light.run_id}",
                                             environment=environment, username="root",
                                             private_key=Path(light.key_path).read_text())
    names = []
    hosts = light.hosts[:count]
    for start in range(0, len(hosts), 500):
        with transaction.atomic():
            for host in hosts[start:start + 500]:
                name = f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-{host.name}"
                inventory.create_host(actor, name=name, address=host.address, port=host.port, username=host.user,
                                      environment=environment, credential=credential, host_key=host.host_key)
                names.append(name)
    return names


def _tables():
    from ops_portal.audit.models import AuditEvent
    from ops_portal.jobs.models import Job, JobEvent, JobTarget

    return {"job": Job._meta.db_table, "targets": JobTarget._meta.db_table, "events": JobEvent._meta.db_table,
            "audit": AuditEvent._meta.db_table}


def table_sizes():
    from django.db import connection

    with connection.cursor() as cursor:
        return {key: cursor.execute("SELECT pg_total_relation_size(%s)", [table]).fetchone()[0]
                for key, table in _tables().items()}


def last_audit_id():
    from ops_portal.audit.models import AuditEvent

    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def job_rows(job_id, audit_after):
    """{kind: (rows, bytes)} of what one job stored: its row, targets, events, audit rows since audit_after."""
    from django.db import connection

    tables = _tables()
    queries = {
        "job": (f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {tables['job']} t WHERE id = %s",
                job_id),
        "targets": (f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {tables['targets']} t "
                    "WHERE job_id = %s", job_id),
        "events": (f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {tables['events']} t "
                   "WHERE job_id = %s", job_id),
        "audit": (f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {tables['audit']} t WHERE id > %s",
                  audit_after),
    }
    with connection.cursor() as cursor:
        return {key: tuple(cursor.execute(sql, [arg]).fetchone()) for key, (sql, arg) in queries.items()}


def server_cpu(light):
    times = light.process().cpu_times()
    return times.user + times.system


def run_seconds(job_id):
    """From the job's claim (started) to its last target's end: the run without the launch call
    and the queue wait, from the database's clocks."""
    from django.db.models import Max

    from ops_portal.jobs.models import Job, JobTarget

    started = Job.objects.filter(pk=job_id).values_list("started", flat=True).get()
    last = JobTarget.objects.filter(job_id=job_id).aggregate(last=Max("finished"))["last"]
    return round((last - started).total_seconds(), 3) if started and last else None


def portal(actor, environment, names, args, worker, light):
    audit_after = last_audit_id()
    sizes_before = table_sizes()
    cpu_before = server_cpu(light)
    result = portal_run(actor, environment, names, args.limit, worker, timeout=args.timeout)
    result["server_cpu_s"] = round(server_cpu(light) - cpu_before, 3)
    result["rows"] = job_rows(result["job"], audit_after)
    result["run_s"] = run_seconds(result["job"])
    sizes_after = table_sizes()
    result["table_growth_bytes"] = {key: sizes_after[key] - sizes_before[key] for key in sizes_before}
    return result


def floor(targets, args, light):
    cpu_before = server_cpu(light)
    result = fabric_pool_run(targets, min(args.limit, len(targets)))
    result["server_cpu_s"] = round(server_cpu(light) - cpu_before, 3)
    return result


def sliced(actor, environment, names, args, workers, site):
    """The job in args.slices slices over `workers` (queue site.<site>): seconds until every result is
    stored, the job's end, and the CPU of all the workers' process trees."""
    from ops_portal.inventory.models import Host
    from ops_portal.jobs.launch import launch_adhoc
    from ops_portal.jobs.models import Job, JobSlice, JobTarget

    from .hosts import tree_cpu

    Host.objects.filter(name__in=names).update(site=site)
    try:
        load = runtime.load_average()
        cpu_before = sum(tree_cpu(w.pid) for w in workers)
        started_wall, started = time.time(), time.perf_counter()
        job = launch_adhoc(actor, environment=environment, action="host.command", values={"command": "uname -a"},
                           selector={"names": names}, name=f"bench sliced x{len(names)}",
                           strategy={"kind": "parallel", "limit": args.limit, "slices": args.slices})
        launched = time.perf_counter()
        _, finished, _, finished_at = runtime.follow_job(job.pk, len(names), started, args.timeout, "sliced job")
        cpu = sum(tree_cpu(w.pid) for w in workers) - cpu_before
    finally:
        Host.objects.filter(name__in=names).update(site=None)
    ok = JobTarget.objects.filter(job=job, state="ok").count()
    ran_on = sorted(set(JobSlice.objects.filter(job=job).values_list("worker", flat=True)))
    state = Job.objects.filter(pk=job.pk).values_list("state", flat=True).get()
    return {"seconds": runtime.ended_after(finished_at, started_wall), "seen_finished_s": finished - started, "ok": ok,
            "state": state, "job": job.pk, "cpu_s": round(cpu, 3), "load": load, "workers": ran_on,
            "launch_call_s": launched - started, "run_s": run_seconds(job.pk)}


def independent(actor, environment, names, args, workers, site):
    """The control for the sliced run: the same targets as args.slices separate unsliced jobs at
    once on the same workers. Seconds from the first launch until the last of them ended (the
    database's `finished`)."""
    from ops_portal.inventory.models import Host
    from ops_portal.jobs.launch import launch_adhoc
    from ops_portal.jobs.models import Job

    from .hosts import tree_cpu

    parts = [names[i::args.slices] for i in range(args.slices)]
    Host.objects.filter(name__in=names).update(site=site)
    try:
        cpu_before = sum(tree_cpu(w.pid) for w in workers)
        started_wall, started = time.time(), time.perf_counter()
        jobs = [launch_adhoc(actor, environment=environment, action="host.command", values={"command": "uname -a"},
                             selector={"names": part}, name=f"bench part x{len(part)}",
                             strategy={"kind": "parallel", "limit": args.limit}).pk for part in parts]
        ends = [runtime.follow_job(job, 0, started, args.timeout, "independent job")[3] for job in jobs]
        seconds = runtime.ended_after(max(ends), started_wall)
        cpu = sum(tree_cpu(w.pid) for w in workers) - cpu_before
    finally:
        Host.objects.filter(name__in=names).update(site=None)
    return {"seconds": seconds, "cpu_s": round(cpu, 3), "run_s": [run_seconds(j) for j in jobs],
            "workers": sorted(set(Job.objects.filter(pk__in=jobs).values_list("worker", flat=True)))}


def main(args):
    from fleet.light import LightFleet

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    biggest = max(sizes)
    runtime.setup_django()
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    actor, _, environment = runtime.bench_user()
    info = runtime.machine()
    started = time.perf_counter()
    light = LightFleet.up(biggest, run_id=f"bench-light-{runtime.RUN_ID}")
    runtime.cleanup.push(f"light fleet {light.run_id} down", light.down)
    up_s = time.perf_counter() - started
    rss = light.process().memory_info().rss
    print(f"{biggest} light hosts listen in {fmt(up_s, 1)} s (server RSS {rss / 2**20:.0f} MiB, "
          f"load average {runtime.load_average()})")
    started = time.perf_counter()
    names = register(actor, environment, light, biggest)
    register_s = time.perf_counter() - started
    print(f"registered {len(names)} hosts through the inventory service in {fmt(register_s, 1)} s")
    targets = ssh_targets(light, light.hosts[:biggest])
    worker = runtime.start_worker(args.concurrency)
    slicing = args.slices > 1
    if slicing:
        from ops_portal.inventory.models import Site

        site = Site.objects.create(name=f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-sliced")
        runtime.cleanup.push("bench site removed", lambda: Site.objects.filter(pk=site.pk).delete())
        slice_workers = [runtime.start_worker(1, queues=f"site.{site.name}", name=f"slicer{n}")
                         for n in range(1, (args.workers or args.slices) + 1)]
    # Warm-up: imports, the worker's first job; nothing timed.
    portal_run(actor, environment, names[:2], args.limit, worker)
    fabric_pool_run(targets[:2], 2)

    results = {size: {"portal": [], "floor": [], "sliced": [], "independent": []} for size in sizes}
    print(f"\n'uname -a' on {', '.join(map(str, sizes))} "
          f"light hosts (parallelism {args.limit}, worker concurrency {args.concurrency})")
    for repeat in range(args.repeats):
        for size in sizes:
            p = portal(actor, environment, names[:size], args, worker, light)
            f = floor(targets[:size], args, light)
            results[size]["portal"].append(p)
            results[size]["floor"].append(f)
            print(f"  repeat {repeat + 1}: {size:5} hosts: portal {fmt(p['seconds'])} s ({p['ok']} ok, {p['state']}, "
                  f"worker CPU {p['cpu_s']} s, RSS peak {p['worker_rss_peak_mib']} MiB), floor {fmt(f['seconds'])} s "
                  f"({f['ok']} ok, CPU {f['cpu_s']} s), load {p['load'][0]}")
            if slicing:
                s = sliced(actor, environment, names[:size], args, slice_workers, site)
                results[size]["sliced"].append(s)
                print(f"             {args.slices} slices on {len(s['workers'])} workers: {fmt(s['seconds'])} s "
                      f"({s['ok']} ok, {s['state']}, workers' CPU {s['cpu_s']} s), load {s['load'][0]}; "
                      f"claim to last target: one worker {p['run_s']} s, sliced {s['run_s']} s")
                c = independent(actor, environment, names[:size], args, slice_workers, site)
                results[size]["independent"].append(c)
                print(f"             control, {args.slices} unsliced jobs of {size // args.slices} at once on "
                      f"{len(c['workers'])} workers: {fmt(c['seconds'])} s (workers' CPU {c['cpu_s']} s; claim to "
                      f"last target {c['run_s']} s)")

    summary = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "func"},
               "light": {"hosts": biggest, "up_s": round(up_s, 2), "server_rss_mib": round(rss / 2**20, 1),
                         "register_s": round(register_s, 2)},
               "results": {str(k): v for k, v in results.items()}, "load_average_end": runtime.load_average()}
    path = runtime.save_results("light", summary)

    print(f"\nlight: 'uname -a', medians of {args.repeats} (load average {info['load_average_start']} → "
          f"{summary['load_average_end']}; {info['date']}; commit {info['commit']})")
    for size in sizes:
        runs_p, runs_f = results[size]["portal"], results[size]["floor"]
        p, f = median([r["seconds"] for r in runs_p]), median([r["seconds"] for r in runs_f])
        pc, fc = median([r["cpu_s"] for r in runs_p]), median([r["cpu_s"] for r in runs_f])
        sp, sf = median([r["server_cpu_s"] for r in runs_p]), median([r["server_cpu_s"] for r in runs_f])
        last = runs_p[-1]
        rows = last["rows"]
        count = sum(n for n, _ in rows.values())
        size_bytes = sum(b for _, b in rows.values())
        growth = sum(last["table_growth_bytes"].values())
        print(f"  {size:5} hosts: portal {fmt(p)} s ({fmt(p / size * 1000, 1)} ms/target, seen finished "
              f"{fmt(last['seen_finished_s'])} s by the polls), floor {fmt(f)} s "
              f"({fmt(f / size * 1000, 1)} ms/target), {fmt(p / f)}x the floor")
        print(f"         CPU per target: worker {fmt(pc / size * 1000, 1)} ms, floor {fmt(fc / size * 1000, 1)} ms; "
              f"light server {fmt(sp / size * 1000, 1)} ms (portal run), {fmt(sf / size * 1000, 1)} ms (floor run)")
        if slicing:
            runs_s = results[size]["sliced"]
            ss, sc = median([r["seconds"] for r in runs_s]), median([r["cpu_s"] for r in runs_s])
            sr = median([r["run_s"] for r in runs_s])
            pr = median([r["run_s"] for r in runs_p])
            print(f"         sliced: {args.slices} slices on {args.workers or args.slices} workers {fmt(ss)} s, "
                  f"{fmt(p / ss)}x faster than one worker; workers' CPU {fmt(sc)} s "
                  f"({fmt(sc / size * 1000, 1)} ms/target) against {fmt(pc)} s")
            print(f"         claim to last target (no launch call): one worker {fmt(pr)} s, sliced {fmt(sr)} s "
                  f"({fmt(pr / sr)}x)")
            cs = median([r["seconds"] for r in results[size]["independent"]])
            print(f"         control: {args.slices} separate jobs at once {fmt(cs)} s ({fmt(p / cs)}x one worker)")
        print(f"         worker RSS peak {max(r['worker_rss_peak_mib'] for r in runs_p)} MiB "
              f"(before {last['worker_rss_before_mib']} MiB)")
        detail = ", ".join(f"{key} {n} ({fmt(b / size, 0)} B/target)" for key, (n, b) in rows.items())
        print(f"         database: {fmt(count / size)} rows/target, {fmt(size_bytes / size, 0)} B/target of row data "
              f"[{detail}]; tables + indexes grew {fmt(growth / size, 0)} B/target")
    print(f"  results: {path}")
    return summary
