"""Faults the worker survives: Redis restarting under it while a job runs."""
import contextlib
import subprocess
import time

import pytest
from django.test import override_settings

from ops_portal.jobs.choices import JobState
from tests import factories
from tests.helpers import operator
from tests.jobs.helpers import launch, local_hosts, wait_job
from tests.live import free_port, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


class PrivateRedis:
    """A throwaway redis-server on its own port (the shared one on 6379 is never restarted)."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_dir = log_dir
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.log_dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        def up():
            try:
                return redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
            except redis.RedisError:
                return False

        wait_for(up, 10, f"redis-server on port {self.port}")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def celery_broker(url):
    """Send this process's tasks to `url`. Celery caches its pools per app: forget them (not close:
    kombu keeps one pool per broker URL for the process, and the usual broker's must stay open)."""
    from ops_portal.celery import app

    def reset():
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    reset()
    app.conf.broker_url = url
    try:
        with override_settings(REDIS_URL=url, CELERY_BROKER_URL=url):
            yield
    finally:
        reset()
        app.conf.broker_url = previous


@pytest.mark.parametrize("down", [0.3, 4])
def test_the_worker_survives_a_redis_restart_during_a_job_and_takes_the_next(live_env, live_logs, tmp_path, down):
    """kombu 5.7 stopped a worker for good when Redis went away under an unacknowledged job."""
    from ops_portal.core import heartbeat

    redis_server = PrivateRedis(tmp_path)
    redis_server.start()
    env = factories.environment("alpha")
    local_hosts(env, 1)
    actor = operator(env)
    worker = None
    try:
        with celery_broker(redis_server.url):
            # As `make run` starts it: four processes, mingle and gossip on.
            worker = start_worker({**live_env, "REDIS_URL": redis_server.url}, live_logs, name=f"redisfault{down}",
                                  concurrency=4, extra=())
            job = launch(actor, env, "echo before; sleep 12; echo after")
            wait_job(job, JobState.RUNNING)
            redis_server.kill()
            time.sleep(down)
            redis_server.start()
            done = wait_job(job, JobState.SUCCEEDED, timeout=60)
            lines = done.events.filter(kind="output").order_by("seq").values_list("text", flat=True)
            assert list(lines) == ["before", "after"]
            # The worker is still there, connected again, and takes new work.
            wait_for(lambda: heartbeat.is_alive("worker", worker.hostname), 30, "worker heartbeat", worker)
            following = launch(actor, env, "echo next")
            assert wait_job(following, JobState.SUCCEEDED, timeout=60).state == JobState.SUCCEEDED
            assert worker.alive(), worker.tail()
            assert "Unrecoverable error" not in worker.tail(400)
    finally:
        if worker is not None:
            worker.stop()
        redis_server.kill()
