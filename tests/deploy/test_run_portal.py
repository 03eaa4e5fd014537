"""`make run`'s supervisor (scripts/run-portal.sh): a crashed process comes back, the others stay up,
and Ctrl-C stops everything."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from tests.helpers import ROOT
from tests.live import answers_healthz, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped yet) is gone for our purpose.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _heartbeat_pid(kind, name):
    from ops_portal.core import redis as portal_redis

    raw = portal_redis.client().get(portal_redis.key("heartbeat", kind, name))
    return json.loads(raw)["pid"] if raw else None


def _interruptible():
    """In the script's process before exec: SIGINT back to its default. A test run started in the
    background by a shell without job control ignores SIGINT, and bash cannot trap a signal ignored
    when it starts: the script would never see the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def test_a_killed_worker_is_restarted_while_web_and_beat_stay_up(live_env, tmp_path):
    import socket

    port = free_port()
    env_file = tmp_path / "portal.env"
    env_file.write_text("# the test's environment comes from the parent process\n")
    env = {**live_env, "PORTAL_ENV_FILE": str(env_file), "PORTAL_PORT": str(port), "WORKER_CONCURRENCY": "1",
           "RESTART_DELAY": "1", "STOP_TIMEOUT": "20"}
    log_path = tmp_path / "run-portal.log"
    with open(log_path, "wb") as log:
        script = subprocess.Popen(["bash", "scripts/run-portal.sh"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_interruptible)
    url = f"http://127.0.0.1:{port}"
    worker_name = f"worker@{socket.gethostname()}"

    def log_text():
        return log_path.read_text(errors="replace")

    try:
        wait_for(lambda: answers_healthz(url, timeout=2), 60, "web /healthz")
        wait_for(lambda: _heartbeat_pid("worker", worker_name), 60, "worker heartbeat")
        wait_for(lambda: _heartbeat_pid("beat", "beat"), 60, "beat heartbeat")
        first_worker = _heartbeat_pid("worker", worker_name)
        beat_pid = _heartbeat_pid("beat", "beat")
        web_pids = [pid for pid in _children(script.pid) if pid not in (first_worker, beat_pid)]

        # Web keeps answering while the worker is down and comes back.
        failures = []
        watching = threading.Event()

        def watch_web():
            while not watching.is_set():
                if not answers_healthz(url, timeout=2):
                    failures.append(time.monotonic())
                time.sleep(0.2)

        watcher = threading.Thread(target=watch_web, daemon=True)
        watcher.start()
        os.kill(first_worker, signal.SIGKILL)
        wait_for(lambda: (_heartbeat_pid("worker", worker_name) or first_worker) != first_worker, 60,
                 f"a new worker process\n{log_text()}")
        watching.set()
        watcher.join()
        assert failures == [], f"web stopped answering while the worker restarted\n{log_text()}"
        assert _alive(beat_pid) and all(_alive(pid) for pid in web_pids), log_text()
        assert f"worker (pid {first_worker}) exited with status 137" in log_text()
        assert script.poll() is None
    finally:
        children = _children(script.pid) if script.poll() is None else []
        script.send_signal(signal.SIGINT)
        try:
            script.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            raise
    # Ctrl-C stopped every process it started.
    assert script.returncode == 0, log_text()
    assert children and not [pid for pid in children if _alive(pid)], log_text()
    assert "stopped" in log_text()
