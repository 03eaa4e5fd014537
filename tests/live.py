"""Live portal processes for integration tests: a Celery worker, beat and the ASGI web server,
started as real subprocesses against the test database and the test Redis."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import ROOT, wait_until

BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_env(django_db_setup, django_db_blocker):
    """Environment variables that point a subprocess at the test database."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ)
    if db["ENGINE"].endswith("postgresql"):
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _purge_redis():
    from django.conf import settings

    from ops_portal.core import redis as portal_redis

    client = portal_redis.client()
    for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000):
        client.delete(key)


def _die_with_parent():
    """In the child: get SIGTERM when the test process dies, even by SIGKILL (Linux prctl)."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1  # noqa: N806 (the kernel's name)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Process:
    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509

    def alive(self):
        return self.proc.poll() is None

    def tail(self, lines=40):
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig=15, timeout=20):
        if self.alive():
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.log.close()


def wait_for(predicate, timeout, what, process=None, interval=0.1):
    """wait_until; with a `process`, fail as soon as it exits, and show its log's tail on failure."""
    if process is None:
        return wait_until(predicate, timeout, what, interval=interval)

    def ready():
        value = predicate()
        if not value and not process.alive():
            raise AssertionError(f"{process.name} exited while waiting for {what}")
        return value

    try:
        return wait_until(ready, timeout, what, interval=interval)
    except AssertionError as failure:
        raise AssertionError(f"{failure}:\n{process.tail()}") from None


@pytest.fixture(scope="session")
def live_logs(tmp_path_factory):
    return tmp_path_factory.mktemp("live-logs")


def start_worker(live_env, live_logs, name="live", concurrency=2, queues="default",
                 extra=("--without-mingle", "--without-gossip")):
    from ops_portal.core import heartbeat

    hostname = f"{name}@{socket.gethostname()}"
    process = Process(f"worker-{name}", [str(BIN / "celery"), "-A", "ops_portal", "worker", "-l", "INFO",
                                        "--concurrency", str(concurrency), "--hostname", hostname, "-Q", queues,
                                        *extra], live_env, live_logs)
    wait_for(lambda: heartbeat.is_alive("worker", hostname), 60, f"worker {hostname} heartbeat", process)
    process.hostname = hostname
    return process


@pytest.fixture(scope="session")
def live_worker(live_env, live_logs):
    """A real Celery worker on the test database and Redis (shared by the session)."""
    _purge_redis()
    process = start_worker(live_env, live_logs)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def live_beat(live_env, live_logs, live_worker):
    from ops_portal.core import heartbeat

    process = Process("beat", [str(BIN / "celery"), "-A", "ops_portal", "beat", "-l", "INFO", "--pidfile=",
                               "--max-interval", "1"], live_env, live_logs)
    wait_for(lambda: heartbeat.is_alive("beat", "beat"), 60, "beat heartbeat", process)
    yield process
    process.stop()


def answers_healthz(url, timeout=1):
    """Whether the portal at `url` answers /healthz with 200."""
    try:
        return requests.get(url + "/healthz", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def daphne_argv(port):
    return [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "ops_portal.asgi:application"]


def start_web(live_env, live_logs, name="web", argv=daphne_argv):
    """Start the ASGI portal (`argv(port)`) on a free port; return its Process, with .url, once it answers."""
    port = free_port()
    process = Process(name, argv(port), live_env, live_logs)
    process.url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_healthz(process.url), 60, "web /healthz", process)
    return process


@pytest.fixture(scope="session")
def live_web(live_env, live_logs):
    """The ASGI portal (daphne) on a free port: its Process, whose .url is the base URL."""
    process = start_web(live_env, live_logs)
    yield process
    process.stop()
