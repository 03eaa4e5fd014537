"""`python -m bench lists`: every list page and list endpoint at 10,000 hosts, 50,000 containers,
200,000 processes and millions of audit rows and job events (issue 13).

1. Rows, generated once into a database of this benchmark's own (`bench_lists`, kept between runs;
   `--regenerate` starts again): one real row of each kind made through the ORM, then multiplied
   by PostgreSQL itself (`INSERT … SELECT … FROM generate_series`, the fastest bulk path there is,
   faster than COPY from a client): hosts (two environments, a group, a credential, 2 KB of facts
   each), Docker engines, containers, Swarm services, programs, processes (with one scan per host),
   jobs by people with one target each, job events (`--events-per-job` per job), audit rows
   (one a second backwards from now, five actions, both environments) and alerts (half open).
2. daphne on that database (DEBUG off, as in production); a superuser and a viewer of one
   environment sign in through the login form (a requests session each, like a browser).
3. For each list page and list endpoint, 2 warm-up requests then `--requests` timed ones per user:
   p50/p95/max of the time from sending the request to the last byte of the answer (127.0.0.1, so
   that is the server's time plus a loopback round trip), and the queries one request makes,
   counted in this process with Django's test client on the same database and code (a
   connection.execute_wrapper), so the portal under test runs unchanged; there too the median Python
   CPU time of a request (3 more requests; PostgreSQL's time is not in it).

Results: var/bench/lists-<run id>.json and a table on stdout. Goal: p95 < 150 ms everywhere.
"""
import json
import os
import re
import time

from . import runtime
from .runtime import fmt, percentile

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_lists"
REDIS_PREFIX = "opsportal-bench-lists"
PASSWORD = "bench-lists-password-123"
GOAL_MS = 150
ACTIONS = ["host.create", "host.update", "job.launch", "rolebinding.create", "credential.rotate"]


def add_arguments(parser):
    parser.add_argument("--hosts", type=int, default=10_000, help="hosts (10,000)")
    parser.add_argument("--containers", type=int, default=50_000, help="containers (50,000)")
    parser.add_argument("--services", type=int, default=5_000, help="Swarm services (5,000)")
    parser.add_argument("--programs", type=int, default=20_000, help="programs (20,000)")
    parser.add_argument("--processes", type=int, default=200_000, help="processes (200,000)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs (10,000)")
    parser.add_argument("--events-per-job", type=int, default=1_000, help="job events per job (1,000)")
    parser.add_argument("--audit", type=int, default=10_000_000, help="audit rows (10,000,000)")
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts (10,000)")
    parser.add_argument("--metric-hours", type=int, default=24,
                        help="hours of 5-minute rollups of CPU, memory and disk per host (24; 0: no metrics)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per list and user (20)")
    parser.add_argument("--regenerate", action="store_true", help="drop the generated rows and make them again")
    parser.add_argument("--only", default="", help="a regular expression: measure only the lists it matches")


# Generation ----------------------------------------------------------------------------------

def _clone(cursor, model, seed_pk, count, overrides, source=None, where=""):
    """Insert `count` copies of the row `seed_pk` of `model`, the columns in `overrides` computed
    from g (1..count) in SQL (or one copy per row of `source`); every other column copied from the
    seed."""
    table = model._meta.db_table
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(f'"{field.column}"')
        values.append(overrides.get(field.column, f's."{field.column}"'))
    cursor.execute(f'INSERT INTO "{table}" ({", ".join(columns)}) SELECT {", ".join(values)} '
                   f'FROM "{table}" AS s, {source or f"generate_series(1, {int(count)}) AS g"} '
                   f'WHERE s.id = %s {where}', [seed_pk])


def _pick(ids, index_sql):
    """SQL choosing one of `ids` by the integer expression index_sql (round robin)."""
    return f"(ARRAY[{','.join(str(int(i)) for i in ids)}])[1 + mod({index_sql}, {len(ids)})]"


def _timed(label, func):
    started = time.monotonic()
    func()
    took = time.monotonic() - started
    print(f"  {label}: {took:.1f} s")
    return took


def generated(environment_names):
    from ops_portal.accounts.models import Environment

    return Environment.objects.filter(name__in=environment_names).count() == len(environment_names)


def drop_generated():
    """Empty every table the generation fills (the audit trigger honours retention's flag)."""
    from django.db import connection, transaction

    tables = ["jobs_jobevent", "jobs_jobtarget", "jobs_job", "jobs_jobtemplate", "monitoring_alert",
              "monitoring_alertrule", "monitoring_sample", "monitoring_rollup", "monitoring_rollupstate",
              "monitoring_environmentrollup", "monitoring_series", "processes_process", "processes_processscan",
              "programs_program",
              "containers_container", "containers_service", "containers_engine", "inventory_host_groups",
              "inventory_host", "inventory_hostgroup", "inventory_credential"]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL ops_portal.audit_prune = 'on'")
        cursor.execute("DELETE FROM audit_auditevent WHERE environment_name LIKE 'lists-%%'")
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        cursor.execute("DELETE FROM accounts_environment WHERE name LIKE 'lists-%'")


def generate(args):
    """Make the rows (see the module's docstring); returns seconds per kind."""
    from django.db import connection, transaction
    from django.utils import timezone

    from ops_portal.accounts.models import Environment
    from ops_portal.containers.models import Container, Engine, Service
    from ops_portal.inventory.models import Credential, Host, HostGroup
    from ops_portal.jobs.models import Job, JobEvent, JobTarget, JobTemplate
    from ops_portal.monitoring.models import Alert, AlertRule
    from ops_portal.processes.models import Process, ProcessScan
    from ops_portal.programs.models import Program
    from schedulers import sshkeys

    took = {}
    now = timezone.now()
    facts = {"os": {"name": "Debian", "version": "12"}, "cpus": 8, "memory": 34359738368,
             "interfaces": {f"eth{i}": {"address": f"10.0.{i}.1", "mtu": 1500} for i in range(8)},
             "packages": {f"package-{i}": f"1.{i}.0" for i in range(60)}}
    with transaction.atomic():
        envs = [Environment.objects.create(name="lists-a"), Environment.objects.create(name="lists-b")]
        key = _ed25519()
        public, fingerprint = sshkeys.describe(key)
        credential = Credential.objects.create(name="lists-key", environment=envs[0], private_key=key,
                                               public_key=public, fingerprint=fingerprint)
        for env in envs:
            HostGroup.objects.create(name="web", environment=env)
        host = Host.objects.create(name="lists-seed-host", environment=envs[0], address="10.1.0.1",
                                   credential=credential, tags=["web", "linux"], facts=facts,
                                   variables={"role": "web"})
        engines = [Engine.objects.create(environment=envs[i % 2], name=f"engine-{i}",
                                         url=f"tcp://10.2.0.{i + 1}:2376") for i in range(20)]
        container = Container.objects.create(engine=engines[0], docker_id="0" * 64, name="lists-seed-container",
                                             state="running", image="web:v1", labels={"app": "web"})
        service = Service.objects.create(engine=engines[0], service_id="seedservice", name="lists-seed-service",
                                         image="web:v1", mode="replicated", replicas_desired=3)
        program = Program.objects.create(host=host, manager="supervisord", name="lists-seed-program")
        scan = ProcessScan.objects.create(host=host, time=now, source="proc", process_count=20)
        process = Process.objects.create(host=host, pid=1, ppid=0, user="root", name="nginx",
                                         cmdline=["nginx", "-g", "daemon off;"], command="nginx -g daemon off;",
                                         state="S", start_time=1_700_000_000.0, fds=12)
        template = JobTemplate.objects.create(name="uptime", environment=envs[0], action="host.command",
                                              action_params={"command": "uptime"})
        job = Job.objects.create(name="Run uptime on web-1", environment=envs[0], action="host.command",
                                 template=template, template_version=1, plan_hash="0" * 64, state="succeeded",
                                 targets_total=1, targets_done=1, created_by_name="lists-seed",
                                 params={"command": "uptime"}, started=now, finished=now)
        target = JobTarget.objects.create(job=job, index=0, kind="host", ref_id=host.pk, name=host.name)
        event = JobEvent.objects.create(job=job, seq=1, time=now, kind="output", target=0, stream="stdout",
                                        text="12:00:01 up 3 days,  2:01,  1 user,  load average: 0.08, 0.03, 0.01")
        rule = AlertRule.objects.create(name="cpu-high", environment=envs[0], metric="cpu", threshold=90)
        alert = Alert.objects.create(rule=rule, source="rule", key="seed", environment=envs[0], host=host,
                                     host_name=host.name, metric="cpu", severity="warning", summary="CPU above 90 %",
                                     value=95.0, threshold=90.0, fired_at=now)
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO audit_auditevent (time, actor_name, action, object_type, object_id, "
                           "object_repr, environment_id, environment_name, request_id, source, before, after) "
                           "VALUES (now(), 'lists-seed', 'host.update', 'inventory.host', '1', 'seed', %s, %s, "
                           "'', 'api', %s, %s) RETURNING id",
                           [envs[0].pk, envs[0].name, json.dumps({"port": 22, "tags": ["web"]}),
                            json.dumps({"port": 2222, "tags": ["web", "linux"]})])
            audit_seed = cursor.fetchone()[0]
    env_pick = f"(ARRAY[{envs[0].pk},{envs[1].pk}])[1 + mod(g, 2)]"
    env_name = "(ARRAY['lists-a','lists-b'])[1 + mod(g, 2)]"

    def run(sql_func):
        with transaction.atomic(), connection.cursor() as cursor:
            sql_func(cursor)

    took["hosts"] = _timed(f"{args.hosts:,} hosts", lambda: run(lambda c: (
        _clone(c, Host, host.pk, args.hosts - 1, {"name": "'lh-' || lpad(g::text, 6, '0')",
                                                  "address": "'10.1.' || (g / 250) || '.' || mod(g, 250)",
                                                  "environment_id": env_pick,
                                                  "created": "s.created + g * interval '1 second'"}),
        c.execute("INSERT INTO inventory_host_groups (host_id, hostgroup_id) SELECT h.id, g.id FROM inventory_host h "
                  "JOIN inventory_hostgroup g ON g.environment_id = h.environment_id"))))
    host_ids = sorted(Host.objects.values_list("pk", flat=True))
    first_host, hosts_n = host_ids[0], len(host_ids)
    if host_ids != list(range(first_host, first_host + hosts_n)):
        raise RuntimeError("the generated hosts' ids are not consecutive (another writer?): --regenerate")
    host_of = f"{first_host} + mod(g - 1, {hosts_n})"  # generated hosts have consecutive ids
    took["containers"] = _timed(f"{args.containers:,} containers", lambda: run(lambda c: _clone(
        c, Container, container.pk, args.containers - 1,
        {"docker_id": "md5(g::text) || md5((g + 1)::text)", "name": "'lc-' || lpad(g::text, 6, '0')",
         "engine_id": _pick([e.pk for e in engines], "g")})))
    took["services"] = _timed(f"{args.services:,} services", lambda: run(lambda c: _clone(
        c, Service, service.pk, args.services - 1,
        {"service_id": "'svc' || g", "name": "'ls-' || lpad(g::text, 6, '0')",
         "engine_id": _pick([e.pk for e in engines], "g")})))
    took["programs"] = _timed(f"{args.programs:,} programs", lambda: run(lambda c: _clone(
        c, Program, program.pk, args.programs - 1,
        {"host_id": host_of, "name": f"'lp-' || ((g - 1) / {hosts_n})"})))
    took["processes"] = _timed(f"{args.processes:,} processes, {hosts_n:,} scans", lambda: run(lambda c: (
        _clone(c, ProcessScan, scan.pk, hosts_n - 1, {"host_id": f"{first_host} + g"}),
        _clone(c, Process, process.pk, args.processes - 1,
               {"host_id": host_of, "pid": f"2 + (g - 1) / {hosts_n}",
                "name": "(ARRAY['nginx','postgres','sshd','python3','node'])[1 + mod(g, 5)]",
                "cpu_percent": "mod(g, 1000) / 10.0", "rss": "g * 4096"}))))
    took["jobs"] = _timed(f"{args.jobs:,} jobs, one target each", lambda: run(lambda c: (
        _clone(c, Job, job.pk, args.jobs - 1, {"environment_id": env_pick,
                                               "created": "s.created - g * interval '1 minute'",
                                               "name": "'Run uptime on lh-' || lpad(g::text, 6, '0')"}),
        _clone(c, JobTarget, target.pk, 0, {"job_id": "j.id"}, source="jobs_job AS j", where=f"AND j.id <> {job.pk}"))))
    job_ids = sorted(Job.objects.values_list("pk", flat=True))
    events = len(job_ids) * args.events_per_job
    # Events in slices of 500 jobs: one transaction each, so a long generation makes progress.
    took["job events"] = _timed(f"{events:,} job events", lambda: [run(lambda c, part=job_ids[i:i + 500]: c.execute(
        "INSERT INTO jobs_jobevent (job_id, seq, time, kind, target, stream, text) "
        "SELECT j, n, now() - (n * interval '1 millisecond'), 'output', 0, 'stdout', s.text "
        "FROM jobs_jobevent s, unnest(%s::bigint[]) j, generate_series(1, %s) n "
        "WHERE s.id = %s AND NOT (j = %s AND n = 1)", [part, args.events_per_job, event.pk, job.pk]))
        for i in range(0, len(job_ids), 500)])
    run(lambda c: c.execute("UPDATE jobs_job SET last_seq = %s", [args.events_per_job]))
    took["alerts"] = _timed(f"{args.alerts:,} alerts", lambda: run(lambda c: _clone(
        c, Alert, alert.pk, args.alerts - 1,
        {"key": "'cpu:' || g", "host_id": host_of, "host_name": "'lh-' || lpad(g::text, 6, '0')",
         "environment_id": env_pick, "state": "CASE WHEN mod(g, 2) = 0 THEN 'firing' ELSE 'resolved' END",
         "resolved_at": "CASE WHEN mod(g, 2) = 0 THEN NULL ELSE now() END",
         "fired_at": "now() - g * interval '1 minute'"})))

    if args.metric_hours:
        took["metrics"] = _timed(f"{args.metric_hours} h of metrics", lambda: run(lambda c: metric_rows(c, args)))

    def audit(cursor, start, count):
        cursor.execute(
            "INSERT INTO audit_auditevent (time, actor_name, action, object_type, object_id, object_repr, "
            "environment_id, environment_name, request_id, source, before, after) "
            f"SELECT now() - g * interval '1 second', (ARRAY['alice','bob','carol','lists-seed'])[1 + mod(g, 4)], "
            f"(ARRAY[{','.join(repr(a) for a in ACTIONS)}])[1 + mod(g, {len(ACTIONS)})], 'inventory.host', "
            f"mod(g, 10000)::text, 'lh-' || lpad(mod(g, 10000)::text, 6, '0'), {env_pick}, {env_name}, "
            "md5(g::text), 'api', s.before, s.after "
            "FROM audit_auditevent s, generate_series(%s, %s) g WHERE s.id = %s",
            [start, start + count - 1, audit_seed])

    # Audit rows in slices of a million (one transaction each), without the table's secondary
    # indexes (13 of them, a B-tree insert each per row: 5,000 rows/s here), rebuilt after the load.
    step = 1_000_000

    def audit_rows():
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent' "
                           "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                           "WHERE conrelid = 'audit_auditevent'::regclass)")
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        try:
            for i in range(0, args.audit, step):
                run(lambda c, i=i: audit(c, i + 1, min(step, args.audit - i)))
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '512MB'")
                for _, definition in indexes:
                    cursor.execute(definition)

    took["audit"] = _timed(f"{args.audit:,} audit rows (indexes dropped during the load and rebuilt)", audit_rows)
    # What autovacuum does to a table in service (it may be off on a test server): statistics for
    # the planner, BRIN ranges summarized (else a time-range read scans every rollup), and the
    # visibility map set, so an index-only scan (a deep offset's walk) does not visit the rows.
    _timed("VACUUM ANALYZE", lambda: connection.cursor().execute("VACUUM ANALYZE"))
    return took


def metric_rows(cursor, args):
    """A CPU, memory and disk (/) series per host, their 5-minute rollups for the last
    `--metric-hours` up to the rollup watermark (now - 7 minutes, rounded to 5), raw samples once
    a minute after it, and monitoring's rollup state saying so; then the per-environment rollups
    from them (monitoring.metrics.roll_environments)."""
    from ops_portal.monitoring import metrics
    from ops_portal.monitoring.choices import FIVE_MINUTES

    now = int(time.time())
    mark = (now - 420) // FIVE_MINUTES * FIVE_MINUTES
    cursor.execute("INSERT INTO monitoring_series (host_id, metric, mount, created) SELECT h.id, m, "
                   "CASE WHEN m = 'disk_percent' THEN '/' ELSE '' END, now() FROM inventory_host h, "
                   "unnest(ARRAY['cpu_percent','mem_percent','disk_percent']) m")
    cursor.execute("INSERT INTO monitoring_rollup (series_id, step, time, avg, max, count) "
                   "SELECT s.id, 300, t, mod(s.id * 7 + t / 300, 90), mod(s.id * 7 + t / 300, 90) + 9, 5 "
                   # in time order, as the rollup task writes them (the time BRIN index relies on it)
                   "FROM generate_series(%s, %s, 300) t, monitoring_series s ORDER BY t, s.id",
                   [mark - args.metric_hours * 3600, mark - FIVE_MINUTES])
    cursor.execute("INSERT INTO monitoring_sample (series_id, time, value) SELECT s.id, t, mod(s.id * 7 + t, 100) "
                   "FROM generate_series(%s, %s, 60) t, monitoring_series s ORDER BY t, s.id", [mark, now])
    cursor.execute("INSERT INTO monitoring_rollupstate (step, done_until) VALUES (300, %s) "
                   "ON CONFLICT (step) DO UPDATE SET done_until = excluded.done_until", [mark])
    metrics.roll_environments(FIVE_MINUTES, 0, mark)


def _ed25519():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def counts():
    from django.db import connection

    tables = {"hosts": "inventory_host", "containers": "containers_container", "services": "containers_service",
              "programs": "programs_program", "processes": "processes_process", "jobs": "jobs_job",
              "job events": "jobs_jobevent", "audit rows": "audit_auditevent", "alerts": "monitoring_alert"}
    with connection.cursor() as cursor:
        result = {}
        for label, table in tables.items():
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (our table names)
            result[label] = cursor.fetchone()[0]
    return result


# Measuring -----------------------------------------------------------------------------------

def lists(deep_cursor, job_id, env_name):
    """(label, path) of every list measured."""
    return [
        ("hosts page", "/hosts/"),
        ("hosts API, 1000", "/api/hosts/?limit=1000"),
        ("hosts API, 50", "/api/hosts/?limit=50"),
        ("containers page", "/containers/"),
        ("containers API, 1000", "/api/containers/?limit=1000"),
        ("services page", "/containers/services/"),
        ("services API, 1000", "/api/services/?limit=1000"),
        ("programs page", "/programs/"),
        ("programs API, 1000", "/api/programs/?limit=1000"),
        ("processes page", "/processes/"),
        ("processes API, 1000", "/api/processes/?limit=1000"),
        ("processes API, top 50 by CPU", "/api/processes/?ordering=-cpu_percent&limit=50"),
        ("jobs page", "/jobs/"),
        ("jobs API, 50", "/api/jobs/?limit=50"),
        ("jobs API, 1000", "/api/jobs/?limit=1000"),
        ("job events API, 1000 after 500", f"/api/jobs/{job_id}/events/?after=500&limit=1000"),
        ("audit page", "/audit/"),
        ("audit page, deep (cursor)", f"/audit/?cursor={deep_cursor}"),
        ("audit page, one environment", f"/audit/?environment={env_name}"),
        ("audit API, 50", "/api/audit/?limit=50"),
        ("audit API, deep (cursor)", f"/api/audit/?limit=50&cursor={deep_cursor}"),
        ("audit API, 1000", "/api/audit/?limit=1000"),
        ("audit API, one action", "/api/audit/?action=job.launch&limit=50"),
        ("audit API, offset 90000 (counted)", "/api/audit/?limit=50&offset=90000"),
        ("monitoring page (alerts)", "/monitoring/"),
        ("alerts API, 1000", "/api/alerts/?limit=1000"),
        ("search page, a prefix of 100 hosts", "/search/?q=lh-0001"),
        ("search API, 40,000 processes match", "/api/search/?q=nginx"),
        ("search API, every kind matches", "/api/search/?q=l"),
        ("search API, a job by number", f"/api/search/?q=%23{job_id}"),
        ("dashboard", "/"),
        ("fleet chart data, 6 h (cached a minute)", "/dashboard/fleet.json?range=6h"),
        ("fleet chart data, 24 h (cached a minute)", "/dashboard/fleet.json?range=24h"),
    ]


def sign_in(base_url, username):
    import requests

    session = requests.Session()
    page = session.get(f"{base_url}/login/", timeout=30)
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if page.status_code != 200 or found is None:
        raise RuntimeError(f"no sign-in form at {base_url}/login/: {page.status_code} {page.text[:300]}")
    token = found.group(1)
    answer = session.post(f"{base_url}/login/", data={"username": username, "password": PASSWORD,
                                                      "csrfmiddlewaretoken": token},
                          headers={"Referer": f"{base_url}/login/"}, timeout=30, allow_redirects=False)
    if answer.status_code != 302:
        raise RuntimeError(f"signing in {username} failed: {answer.status_code} {answer.text[:300]}")
    return session


def query_count(user, path, repeats=3):
    """Queries of one request, and the median CPU time this process spent on it (Python only:
    PostgreSQL's share is not in it, nor the time waited for a busy CPU)."""
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    executed = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")
    cpu = []
    for _ in range(repeats):
        started = time.process_time()
        client.get(path)
        cpu.append((time.process_time() - started) * 1000)
    return len(executed), sorted(cpu)[len(cpu) // 2]


def measure(session, url, repeats):
    times = []
    for i in range(repeats + 2):
        started = time.perf_counter()
        response = session.get(url, timeout=120)
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        if i >= 2:
            times.append(took * 1000)
    return times, len(response.content)


def main(args):
    from urllib.parse import urlsplit

    runtime.DATABASE_URL = DATABASE_URL
    runtime.PORTAL_ENV["DATABASE_URL"] = DATABASE_URL
    runtime.REDIS_PREFIX = REDIS_PREFIX
    runtime.PORTAL_ENV["REDIS_PREFIX"] = REDIS_PREFIX
    print(f"database {urlsplit(DATABASE_URL).path.lstrip('/')} (kept between runs)")
    results = {"machine": runtime.machine(), "args": vars(args) | {"func": None}}
    runtime.setup_django()

    from django.contrib.auth import get_user_model

    from ops_portal.accounts.choices import Role
    from ops_portal.accounts.models import Environment, RoleBinding
    from ops_portal.audit.models import AuditEvent
    from ops_portal.core import keyset
    from ops_portal.jobs.models import Job

    names = ["lists-a", "lists-b"]
    if args.regenerate or not generated(names):
        print("generating rows (once; --regenerate to make them again)")
        drop_generated()
        started = time.monotonic()
        results["generation_seconds"] = generate(args)
        results["generation_total_seconds"] = round(time.monotonic() - started, 1)
    results["rows"] = counts()
    print("rows: " + ", ".join(f"{label} {n:,}" for label, n in results["rows"].items()))

    users = get_user_model()
    admin = users.objects.create_superuser(f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-admin", password=PASSWORD)
    viewer = users.objects.create_user(f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-viewer", password=PASSWORD)
    RoleBinding.objects.create(user=viewer, role=Role.VIEWER, environment=Environment.objects.get(name="lists-a"))

    deep = AuditEvent.objects.order_by("-time", "-pk")[90_000]
    deep_cursor = keyset.make_cursor(AuditEvent._meta.get_field("time"), deep, "n")
    job_id = Job.objects.filter(environment__name="lists-a").order_by("-pk").values_list("pk", flat=True).first()
    targets = lists(deep_cursor, job_id, "lists-b")
    if args.only:
        targets = [(label, path) for label, path in targets if re.search(args.only, label)]

    # DEBUG is off: pages name their assets through collectstatic's manifest.
    import subprocess

    subprocess.run([str(runtime.BIN / "python"), "manage.py", "collectstatic", "--no-input", "-v0"], cwd=runtime.ROOT,
                   env={**os.environ, **runtime.PORTAL_ENV}, check=True)
    web = runtime.start_web()
    sessions = {"admin of all": (admin, sign_in(web.url, admin.username)),
                "viewer of lists-a": (viewer, sign_in(web.url, viewer.username))}
    results["load_average_start"] = runtime.load_average()
    rows = []
    print(f"\n{'list':38} {'user':18} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'queries':>7} {'CPU ms':>7} "
          f"{'KiB':>7}")
    for label, path in targets:
        for who, (user, session) in sessions.items():
            queries, cpu_ms = query_count(user, path)
            times, size = measure(session, web.url + path, args.requests)
            row = {"list": label, "path": path, "user": who, "p50_ms": round(percentile(times, 50), 1),
                   "p95_ms": round(percentile(times, 95), 1), "max_ms": round(max(times), 1),
                   "queries": queries, "python_cpu_ms": round(cpu_ms, 1), "bytes": size,
                   "times_ms": [round(t, 1) for t in times]}
            rows.append(row)
            flag = "" if row["p95_ms"] < GOAL_MS else "  over the goal"
            print(f"{label:38} {who:18} {fmt(row['p50_ms'], 1):>8} {fmt(row['p95_ms'], 1):>8} "
                  f"{fmt(row['max_ms'], 1):>8} {queries:>7} {cpu_ms:>7.0f} {size / 1024:>7.0f}{flag}")
    results["lists"] = rows
    results["load_average_end"] = runtime.load_average()
    over = [r for r in rows if r["p95_ms"] >= GOAL_MS]
    print(f"\n{len(rows) - len(over)} of {len(rows)} under p95 {GOAL_MS} ms; load {results['load_average_start']} → "
          f"{results['load_average_end']}")
    print(f"results: {runtime.save_results('lists', results)}")
