"""First-run set-up: default environments (production with an approval policy), an administrator,
this machine as the first host, and its Docker engine when a socket is there.

Idempotent: what exists is left alone. The production policy is created with the environments,
only then, so a policy an administrator deleted later is not brought back. The administrator's
generated password is printed once and stored nowhere in clear.

It lives in dashboard, the top app, because it touches accounts, approvals and inventory (core,
where it was, sits below them all).
"""
import re
import secrets
import socket

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from ops_portal.accounts import services as access
from ops_portal.accounts.models import Environment
from ops_portal.approvals import services as approvals
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.inventory import services as inventory
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.models import Host

# Every job that changes its targets in production waits for one approver (not the requester).
PRODUCTION_POLICY = {"name": "production-changes", "risks": ["mutating"], "approvals_required": 1}
DEFAULT_ENVIRONMENTS = [
    ("production", "Live systems: changes need approval", True),
    ("staging", "Pre-production", False),
    ("development", "Developers' systems and this machine", False),
]


class Command(BaseCommand):
    help = "Create default environments, an admin user (password printed once) and the local host."

    def add_arguments(self, parser):
        parser.add_argument("--admin", default="admin", help="User name of the administrator to create.")
        parser.add_argument("--no-local-host", action="store_true", help="Do not register this machine.")

    def handle(self, *args, admin, no_local_host, **options):
        actor = Actor.system(Source.SYSTEM)
        if not Environment.objects.exists():
            with transaction.atomic():
                for name, description, production in DEFAULT_ENVIRONMENTS:
                    environment = access.create_environment(actor, name=name, description=description,
                                                            is_production=production)
                    if production:
                        approvals.create_policy(actor, environment=environment, **PRODUCTION_POLICY)
            self.stdout.write("Created environments: " + ", ".join(n for n, _, _ in DEFAULT_ENVIRONMENTS))
            self.stdout.write(f"Production changes need one approval (policy {PRODUCTION_POLICY['name']!r}).")

        if not get_user_model().objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(15)
            access.create_user(actor, username=admin, password=password, is_superuser=True, is_staff=True)
            self.stdout.write(self.style.SUCCESS(
                f"\n  Administrator created. Sign in as  {admin}  with password  {password}\n"
                "  (shown once; change it under your user name in the top bar)\n"
            ))

        if not no_local_host and not Host.objects.filter(transport=Transport.LOCAL).exists():
            environment = Environment.objects.filter(name="development").first() or Environment.objects.first()
            if environment is not None:
                name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:120].strip("-.") or "localhost"
                if Host.objects.filter(name=name).exists():
                    name = f"{name}-local"
                inventory.create_host(actor, name=name, address="127.0.0.1", port=22, transport=Transport.LOCAL,
                                      environment=environment, tags=["portal"])
                self.stdout.write(f"Registered this machine as host {name!r} in {environment.name}.")
        if not no_local_host:
            # This machine's Docker engine, tied to its host (register_engine is idempotent by URL).
            call_command("register_engine", if_socket=True, stdout=self.stdout)
