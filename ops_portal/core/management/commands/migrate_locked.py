"""`migrate_locked`: `migrate` under a PostgreSQL advisory lock, for containers that start together.

Several web replicas start at once and each migrates before serving. Two plain `migrate` runs
against one empty database race (both see a migration unapplied, one fails on a table the other
created). Here each run first takes a session-level advisory lock on a connection of its own; the
next run waits for it, then finds everything applied and does nothing. The lock is released when
the run ends, or by PostgreSQL when its connection drops (a killed container never leaves it held).
Other databases (SQLite in development) have one writer anyway: plain `migrate`.
"""
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

# One key per deployment's database: "opsmigr8" as a signed 64-bit integer.
LOCK_KEY = int.from_bytes(b"opsmigr8", "big", signed=True)
POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = "Apply migrations under a PostgreSQL advisory lock: concurrent runs apply them once, one after the other."

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--timeout", type=float, default=600.0,
                            help="Seconds to wait for another run's lock before failing (default 600).")

    def handle(self, *args, database, timeout, verbosity, **options):
        connection = connections[database]
        if connection.vendor != "postgresql":
            call_command("migrate", database=database, interactive=False, verbosity=verbosity)
            return
        if timeout <= 0:
            raise CommandError("--timeout must be positive.")
        lock = connection.get_new_connection(connection.get_connection_params())
        lock.autocommit = True
        try:
            self._acquire(lock, timeout, verbosity)
            call_command("migrate", database=database, interactive=False, verbosity=verbosity)
        finally:
            # Closing the session releases the lock (an explicit unlock would fail the same way if
            # the connection broke meanwhile).
            lock.close()

    def _acquire(self, lock, timeout, verbosity):
        deadline = time.monotonic() + timeout
        waiting = False
        with lock.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
                if cursor.fetchone()[0]:
                    if waiting and verbosity:
                        self.stdout.write("Migration lock acquired.")
                    return
                if not waiting and verbosity:
                    self.stdout.write("Another process is migrating: waiting for its lock.")
                waiting = True
                if time.monotonic() >= deadline:
                    raise CommandError(f"Another process held the migration lock for over {timeout:g} s.")
                time.sleep(POLL_SECONDS)
