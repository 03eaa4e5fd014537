"""Follow every enabled Docker engine's events and keep the container inventory current.

    manage.py container_watcher            # until SIGTERM / Ctrl-C

Its heartbeat (Redis, like the worker's and beat's) shows in /readyz ("watcher") and in
`manage.py healthcheck watcher`.
"""
import faulthandler
import signal
import threading

from django.core.management.base import BaseCommand

from ops_portal.containers.watcher import Supervisor


class Command(BaseCommand):
    help = "Watch the enabled Docker engines' event streams and keep containers, services and tasks current."

    def add_arguments(self, parser):
        parser.add_argument("--poll", type=float, default=2.0, help="Seconds between reading the engine list.")

    def handle(self, *args, poll, **options):
        stop = threading.Event()

        def finish(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, finish)
        signal.signal(signal.SIGINT, finish)
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: every thread's stack on stderr
        self.stdout.write("container watcher running (Ctrl-C stops it)")
        Supervisor(poll=poll).run(stop)
        self.stdout.write("container watcher stopped")
