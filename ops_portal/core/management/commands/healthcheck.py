"""Container healthchecks: `healthcheck web|worker|beat|watcher` exits 0 when that process is healthy.

web: the database and Redis answer (what /readyz?check=database,redis reports);
worker: a worker on this host has a current heartbeat; beat: beat has a current heartbeat;
watcher: the container watcher on this host has a current heartbeat.
"""
import socket
import sys

from django.core.management.base import BaseCommand

from ops_portal.core import heartbeat
from ops_portal.core.health import run_checks


class Command(BaseCommand):
    help = "Exit 0 if the named portal process is healthy (for container healthchecks)."

    def add_arguments(self, parser):
        parser.add_argument("process", choices=["web", "worker", "beat", "watcher"])

    def handle(self, *args, process, **options):
        if process == "web":
            results = run_checks(["database", "redis"])
            healthy = all(r["ok"] for r in results.values())
        elif process in ("worker", "watcher"):
            healthy = heartbeat.is_alive(process, f"{process}@{socket.gethostname()}")
        else:
            healthy = bool(heartbeat.alive("beat"))
        self.stdout.write("healthy" if healthy else "unhealthy")
        sys.exit(0 if healthy else 1)
