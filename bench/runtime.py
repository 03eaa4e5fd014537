"""What every benchmark needs: a private database and Redis namespace, live portal processes
(daphne, a Celery worker) started as subprocesses, cleanup that runs even on Ctrl-C, and small
statistics helpers.

Environment (all optional): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bench),
BENCH_REDIS_URL (default redis://127.0.0.1:6379/10), BENCH_REDIS_PREFIX (default opsportal-bench),
BENCH_DEBUG (default false: the portal runs as in production, DEBUG off).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / "var" / "bench"
RUN_ID = f"{time.strftime('%m%d%H%M%S')}{os.getpid() % 1000:03d}"
NAME_PREFIX = "bench-"  # every row a benchmark creates is named bench-<run id>…

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
REDIS_PREFIX = os.environ.get("BENCH_REDIS_PREFIX", "opsportal-bench")

PORTAL_ENV = {
    "DJANGO_SETTINGS_MODULE": "ops_portal.settings",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "REDIS_PREFIX": REDIS_PREFIX,
    "DEBUG": "true" if os.environ.get("BENCH_DEBUG", "").lower() in ("1", "true", "yes") else "false",
    "HTTPS": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuv",
    # A fixed Fernet key so the worker reads the credentials the bench process encrypted.
    "ENCRYPTION_KEYS": "atk_vxTIpdC59IfKIO-gzYibpyJ5InQ-yJTLrLhDU68=",
    "HEARTBEAT_INTERVAL": "1",
    "HEARTBEAT_TTL": "3",
    "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
    "LOG_LEVEL": "WARNING",
    "PYTHONPATH": str(ROOT),
    "PYTHONDONTWRITEBYTECODE": "1",
}


def configure():
    """Point this process at the bench database and Redis (before Django is imported)."""
    for name, value in PORTAL_ENV.items():
        os.environ[name] = value
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# Cleanup ------------------------------------------------------------------------------------

class Cleanup:
    """A stack of undo steps run once, in reverse, on normal exit, exceptions, Ctrl-C and SIGTERM."""

    def __init__(self):
        self.steps = []
        self.done = False

    def push(self, what, func, *args):
        self.steps.append((what, func, args))

    def run(self):
        if self.done:
            return
        self.done = True
        # A second Ctrl-C while cleaning up must not leave containers behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self.steps:
                what, func, args = self.steps.pop()
                try:
                    func(*args)
                except Exception as exc:  # keep cleaning
                    print(f"  cleanup: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, previous)


cleanup = Cleanup()


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers():
    # Also when started in the background by a shell that ignores SIGINT for its children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


# Database and Redis ------------------------------------------------------------------------

def ensure_database():
    """Create the bench database if missing and migrate it (quick when it is up to date)."""
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    env = {**os.environ, **PORTAL_ENV}
    started = time.monotonic()
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env,
                   check=True)
    return time.monotonic() - started


def purge_redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
    # Celery's kombu bindings live under the global key prefix too; nothing else is ours.
    client.close()


def delete_bench_rows(run_id=None):
    """Remove what benchmarks made in the bench database: jobs (events, targets, leases), artifacts,
    hosts, credentials, environments, tokens, users and their audit rows. run_id=None: every run."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from ops_portal.accounts.models import APIToken, Environment, RoleBinding
    from ops_portal.containers.models import Engine, Stack
    from ops_portal.inventory.models import Artifact, Credential, Host, HostGroup
    from ops_portal.jobs.models import Job, JobEvent, JobTarget, Lease
    from ops_portal.projects.models import Project

    prefix = NAME_PREFIX + (run_id or "")
    envs = list(Environment.objects.filter(name__startswith=prefix).values_list("pk", flat=True))
    users = list(get_user_model().objects.filter(username__startswith=prefix).values_list("pk", flat=True))
    jobs = list(Job.objects.filter(environment_id__in=envs).values_list("pk", flat=True))
    with transaction.atomic():
        with connection.cursor() as cursor:
            # The audit table refuses deletes except for retention, which sets this flag.
            cursor.execute("SET LOCAL ops_portal.audit_prune = 'on'")
            if envs or users:
                cursor.execute("DELETE FROM audit_auditevent WHERE environment_id = ANY(%s) OR actor_id = ANY(%s) "
                               "OR environment_name LIKE %s OR actor_name LIKE %s",
                               [envs, users, prefix + "%", prefix + "%"])
        JobEvent.objects.filter(job_id__in=jobs).delete()
        JobTarget.objects.filter(job_id__in=jobs).delete()
        Lease.objects.filter(job_id__in=jobs).delete()
        Job.objects.filter(pk__in=jobs).update(relaunch_of=None)
        Job.objects.filter(pk__in=jobs).delete()
        Artifact.objects.filter(environment_id__in=envs).delete()
        Stack.objects.filter(engine__environment_id__in=envs).delete()
        Engine.objects.filter(environment_id__in=envs).delete()
        Host.objects.filter(environment_id__in=envs).delete()
        HostGroup.objects.filter(environment_id__in=envs).delete()
        Project.objects.filter(environment_id__in=envs).delete()
        Credential.objects.filter(environment_id__in=envs).delete()
        RoleBinding.objects.filter(user_id__in=users).delete()
        APIToken.objects.filter(user_id__in=users).delete()
        get_user_model().objects.filter(pk__in=users).delete()
        Environment.objects.filter(pk__in=envs).delete()
    return len(jobs)


_LOCK = []


def take_lock(timeout=900):
    """One benchmark at a time per database and Redis namespace: each clears the namespace it uses.
    Taken once per process (a second call, e.g. from setup_django, keeps the lock already held)."""
    import fcntl
    import hashlib

    if _LOCK:
        return

    name = hashlib.sha256(f"{DATABASE_URL} {REDIS_URL} {REDIS_PREFIX}".encode()).hexdigest()[:12]
    handle = open(f"/tmp/opsportal-bench-{name}.lock", "w")  # noqa: SIM115 (held until exit)
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError("another benchmark holds the bench database; try again later") from None
            if not told:
                print("another benchmark is using the bench database and Redis namespace: waiting…")
                told = True
            time.sleep(1)
    _LOCK.append(handle)
    cleanup.push("bench lock", lambda: (_LOCK.clear(), handle.close()))


def setup_django():
    """Create/migrate the bench database, start Django here, and clear leftovers of crashed runs."""
    configure()
    take_lock()
    took = ensure_database()
    import django

    django.setup()
    leftovers = delete_bench_rows()
    purge_redis()
    if leftovers:
        print(f"removed {leftovers} jobs left by earlier bench runs")
    cleanup.push("bench database rows", delete_bench_rows, RUN_ID)
    cleanup.push("bench Redis keys", purge_redis)
    return took


def bench_user():
    """A superuser of the bench, a token for the websocket, and an environment for its objects."""
    from django.contrib.auth import get_user_model

    from ops_portal.accounts import services as accounts
    from ops_portal.accounts.models import Environment
    from ops_portal.core.context import Actor

    user = get_user_model().objects.create_superuser(f"{NAME_PREFIX}{RUN_ID}", password=None)
    actor = Actor.for_user(user, source="api")
    _, key = accounts.create_token(actor, name="bench")
    environment = Environment.objects.create(name=f"{NAME_PREFIX}{RUN_ID}")
    return actor, key, environment


# Processes ----------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A portal process in its own session; stop() ends its whole process group."""

    def __init__(self, name, argv, extra_env=None):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{RUN_ID}-{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, **PORTAL_ENV, **(extra_env or {})}
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pid = self.proc.pid
        cleanup.push(f"stop {name}", self.stop)

    def alive(self):
        return self.proc.poll() is None

    def tail(self, lines=30):
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout=20):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        if not self.log.closed:
            self.log.close()


def wait_for(predicate, timeout, what, process=None, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}" +
                       (f"\n{process.tail()}" if process is not None else ""))


def start_worker(concurrency=2, queues="default", name="worker", *, warm=False):
    """A Celery worker on the bench's database; warm SSH connections off unless asked for (the
    benchmarks that measure jobs cold must not be served connections of the previous repeat)."""
    from ops_portal.core import heartbeat

    suffix = "" if name == "worker" else f"-{name}"
    hostname = f"bench{RUN_ID}{suffix}@{socket.gethostname()}"
    process = Process(name, [str(BIN / "celery"), "-A", "ops_portal", "worker", "-l", "WARNING",
                             "--concurrency", str(concurrency), "--hostname", hostname, "-Q", queues,
                             "--without-mingle", "--without-gossip"],
                      extra_env=None if warm else {"SSH_WARM_MAX": "0"})
    wait_for(lambda: heartbeat.is_alive("worker", hostname), 90, f"worker {hostname} heartbeat", process)
    process.hostname = hostname
    return process


def start_web():
    import requests

    port = free_port()
    process = Process("web", [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                              "ops_portal.asgi:application"])
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(up, 90, "web /healthz", process)
    process.url = url
    process.ws_url = f"ws://127.0.0.1:{port}/ws/"
    return process


def wait_job(job_id, timeout=300, interval=0.05):
    from ops_portal.jobs.choices import FINISHED_STATES
    from ops_portal.jobs.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.state in FINISHED_STATES:
            return job
        time.sleep(interval)
    raise RuntimeError(f"job {job_id} did not finish within {timeout}s")


POLL_INTERVAL = 0.05  # seconds between a bench's looks at a running job


def follow_job(job_id, targets, started, timeout, what="job", interval=POLL_INTERVAL):
    """Poll a job every `interval` s until it ends: (perf_counter when all `targets` were seen
    stored or None, perf_counter when it was seen ended, its state, when it ended by the database's
    clock (its `finished`, a datetime)). `started` is the caller's perf_counter at launch.

    A job's time is best taken from `finished` (ended_after()): the polls only say when to read
    it. Polling every 10 ms, as the benches did before 2026-12-03, is itself load: on two cores
    it lengthened a 50-host warm job's targets phase by about 40 ms (docs/PERFORMANCE.md)."""
    from ops_portal.jobs.choices import FINISHED_STATES
    from ops_portal.jobs.models import Job

    all_done = None
    while True:
        done, state, finished_at = Job.objects.filter(pk=job_id).values_list("targets_done", "state",
                                                                             "finished").get()
        now = time.perf_counter()
        if all_done is None and done >= targets:
            all_done = now
        if state in FINISHED_STATES:
            return all_done, now, state, finished_at
        if now - started > timeout:
            raise RuntimeError(f"{what} {job_id} still {state} after {timeout}s ({done}/{targets} done)")
        time.sleep(interval)


def ended_after(finished_at, started_wall):
    """Seconds from a launch (time.time() taken just before it) to the job's end in the database."""
    return finished_at.timestamp() - started_wall


def job_phases(job_id):
    """Where a job's time went, in ms, from the database's clocks: created -> claimed (the Celery hop
    and the claim), claimed -> first target started, first -> last target finished, last target
    finished -> job finished (the writer's last flush and the job's end)."""
    from django.db.models import Max, Min

    from ops_portal.jobs.models import Job, JobTarget

    job = Job.objects.filter(pk=job_id).values("created", "started", "finished").get()
    ends = JobTarget.objects.filter(job_id=job_id).aggregate(first=Min("started"), last=Max("finished"))

    def ms(a, b):
        return round((b - a).total_seconds() * 1000) if a and b else None

    return {"to_claim": ms(job["created"], job["started"]), "to_first_target": ms(job["started"], ends["first"]),
            "targets": ms(ends["first"], ends["last"]), "to_end": ms(ends["last"], job["finished"])}


# Figures -------------------------------------------------------------------------------------

def median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def percentile(values, p, presorted=False):
    """Linear interpolation between closest ranks (numpy's default)."""
    values = values if presorted else sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    low = int(k)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (k - low)


def load_average():
    return tuple(round(x, 2) for x in os.getloadavg())


def source_commit():
    """The commit of the product code measured (a `git archive` copy carries it in .bench-commit)."""
    marker = ROOT / ".bench-commit"
    if marker.exists():
        return marker.read_text().strip() + " (clean copy)"
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ops_portal", "schedulers"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + uncommitted changes" if dirty else "")


def machine():
    import psutil

    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0], "load_average_start": load_average(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": source_commit()}


def save_results(name, results):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{name}-{RUN_ID}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def fmt(value, digits=2):
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


class TreeSampler:
    """Samples the resident memory (sum over a process and its descendants) every `interval` s."""

    def __init__(self, pid, interval=0.05):
        import threading

        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_by_process = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def rss(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0, {}
        total, each = 0, {}
        for proc in procs:
            try:
                value = proc.memory_info().rss
            except psutil.Error:
                continue
            total += value
            each[proc.pid] = value
        return total, each

    def _run(self):
        while not self._stop.is_set():
            total, each = self.rss()
            self.samples += 1
            self.peak = max(self.peak, total)
            for pid, value in each.items():
                self.peak_by_process[pid] = max(self.peak_by_process.get(pid, 0), value)
            self._stop.wait(self.interval)

    def __enter__(self):
        self.baseline, _ = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
