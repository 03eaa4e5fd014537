"""`manage.py migrate_locked` against the test database server: web replicas that start together
migrate one after the other, never racing on an empty database."""
import os
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
from django.conf import settings

from ops_portal.core.management.commands.migrate_locked import LOCK_KEY
from tests.helpers import ROOT, missing, wait_until

pytestmark = pytest.mark.live
WAITING = "Another process is migrating: waiting for its lock."


def _server():
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        missing("migrate_locked needs PostgreSQL (DATABASE_URL)")
    return {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"],
            "password": db.get("PASSWORD") or None}


@pytest.fixture
def empty_database():
    """A new empty database on the test server: (its DATABASE_URL, a function opening a connection to it)."""
    server = _server()
    name = f"test_migrate_locked_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    auth = server["user"] + (f":{server['password']}" if server["password"] else "")
    url = f"postgres://{auth}@{server['host']}:{server['port']}/{name}"
    yield url, lambda: psycopg.connect(dbname=name, autocommit=True, **server)
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


class Run:
    """`manage.py migrate_locked` in a subprocess, its output in a file (read while it runs)."""

    def __init__(self, url, log, *extra):
        env = dict(os.environ, DATABASE_URL=url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "manage.py", "migrate_locked", *extra], cwd=ROOT,
                                         env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self):
        return self.log.read_text(errors="replace")

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"migrate_locked still running after {timeout} s:\n{self.output()}") from None


def _has_migrations_table(connect):
    with connect() as conn:
        return conn.execute("SELECT to_regclass('django_migrations') IS NOT NULL").fetchone()[0]


def test_concurrent_runs_wait_for_the_lock_then_apply_every_migration_once(empty_database, tmp_path):
    url, connect = empty_database
    holder = connect()
    holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    runs = [Run(url, tmp_path / "a.log"), Run(url, tmp_path / "b.log")]
    try:
        # Both wait while another session holds the lock, and neither touches the schema.
        wait_until(lambda: all(WAITING in r.output() for r in runs) or any(r.proc.poll() is not None for r in runs),
                   120, "both runs waiting for the migration lock")
        time.sleep(1)
        assert all(r.proc.poll() is None for r in runs), [r.output() for r in runs]
        assert not _has_migrations_table(connect)
    finally:
        holder.close()  # releases the lock
    for run in runs:
        assert run.wait(600) == 0, run.output()
    outputs = [r.output() for r in runs]
    # One applied every migration, the other then found nothing left to do.
    assert sum("Applying " in o for o in outputs) == 1, outputs
    assert any("No migrations to apply." in o for o in outputs), outputs
    with connect() as conn:
        assert conn.execute("SELECT app, name FROM django_migrations GROUP BY app, name "
                            "HAVING count(*) > 1").fetchall() == []
        assert conn.execute("SELECT count(*) FROM django_migrations WHERE app = 'jobs'").fetchone()[0] > 0
        # Nothing left holding the lock once the runs ended.
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]


def test_a_run_gives_up_after_its_timeout_while_another_holds_the_lock(empty_database, tmp_path):
    url, connect = empty_database
    with connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        run = Run(url, tmp_path / "run.log", "--timeout", "2")
        code = run.wait(120)
    output = run.output()
    assert code != 0, output
    assert WAITING in output
    assert "held the migration lock for over 2 s" in output
    assert not _has_migrations_table(connect)
