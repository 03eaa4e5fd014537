"""Register a Docker engine in the portal (idempotent: an engine with the same URL is left alone).

    manage.py register_engine --if-socket                      # make run: this machine's engine
    manage.py register_engine --environment staging --name fleet   # make fleet: the fleet's engine

A unix-socket engine is tied to the inventory host with the local transport (the portal's own
machine) when that host is in the engine's environment. The engine is checked once at once; the
container watcher follows it from then on.
"""
import os
import urllib.parse

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from ops_portal.accounts.models import Environment
from ops_portal.containers import engines, services
from ops_portal.containers.models import Engine
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.inventory.choices import Transport as HostTransport
from ops_portal.inventory.models import Host

DEFAULT_URL = "unix:///var/run/docker.sock"


class Command(BaseCommand):
    help = "Register a Docker engine (unix socket by default) in an environment; idempotent by URL."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=os.environ.get("DOCKER_HOST") or DEFAULT_URL)
        parser.add_argument("--name", default="local")
        parser.add_argument("--environment", default="",
                            help="Default: the environment of this machine's local host, else development.")
        parser.add_argument("--host", default="", help="The inventory host it runs on (default for unix "
                                                       "sockets: the local host, when in that environment).")
        parser.add_argument("--if-socket", action="store_true", help="Do nothing when the unix socket is missing.")

    def handle(self, *args, url, name, environment, host, if_socket, **options):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "unix" and not os.path.exists(parts.path):
            if if_socket:
                self.stdout.write(f"No Docker socket at {parts.path}: no engine registered.")
                return
            raise CommandError(f"no Docker socket at {parts.path}")
        existing = Engine.objects.filter(url=url).select_related("environment").first()
        if existing is not None:
            self.stdout.write(f"Engine {existing.name!r} ({url}) is registered in {existing.environment.name}.")
            return
        local = Host.objects.filter(transport=HostTransport.LOCAL).select_related("environment").first()
        env_name = environment or (local.environment.name if local else "development")
        env = Environment.objects.filter(name=env_name).first()
        if env is None:
            raise CommandError(f"no environment {env_name!r} (run `manage.py bootstrap` first)")
        tied = None
        if host:
            tied = Host.objects.filter(name=host, environment=env).first()
            if tied is None:
                raise CommandError(f"no host {host!r} in {env_name}")
        elif parts.scheme == "unix" and local is not None and local.environment_id == env.pk:
            tied = local
        if Engine.objects.filter(environment=env, name=name).exists():
            name = f"{name}-{Engine.objects.count() + 1}"
        try:
            engine = services.create_engine(Actor.system(Source.SYSTEM), environment=env, name=name, url=url,
                                            transport=parts.scheme, host=tied)
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError(f"engine not registered: {exc}") from None
        status = engines.check(engine)
        where = f", on host {tied.name}" if tied else ""
        self.stdout.write(f"Registered engine {engine.name!r} ({url}) in {env.name}{where}: {status.message}")
