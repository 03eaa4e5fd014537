"""Register a fleet inventory (from `python -m fleet up`) in the portal: a credential holding the
run's key and one host per fleet host, with its host key pinned. Idempotent per host name."""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ops_portal.accounts.models import Environment
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.inventory import services
from ops_portal.inventory.models import Credential, Host


class Command(BaseCommand):
    help = "Register the hosts of a fleet inventory file (var/fleet/current/inventory.json)."

    def add_arguments(self, parser):
        parser.add_argument("inventory", type=Path)
        parser.add_argument("--environment", default="staging")
        parser.add_argument("--tag", default="fleet")

    def handle(self, *args, inventory, environment, tag, **options):
        try:
            data = json.loads(inventory.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {inventory}: {exc}") from None
        env = Environment.objects.filter(name=environment).first()
        if env is None:
            raise CommandError(f"no environment {environment!r} (run `manage.py bootstrap` first)")
        actor = Actor.system(Source.SYSTEM)
        name = f"fleet-{data['run_id']}"[:128]
        credential = Credential.objects.filter(name=name).first() or services.create_credential(
            actor, name=name, environment=env, username=data.get("user", "root"),
            private_key=Path(data["private_key"]).read_text())
        added = 0
        for host in data["hosts"]:
            fields = {"address": host["address"], "port": host["port"], "username": host.get("user", "root"),
                      "environment": env, "credential": credential, "host_key": host.get("host_key", ""),
                      "tags": [tag]}
            existing = Host.objects.filter(name=host["name"]).first()
            if existing is None:
                services.create_host(actor, name=host["name"], **fields)
                added += 1
            else:
                services.update_host(actor, existing, **fields)
        self.stdout.write(f"Registered {added} new and {len(data['hosts']) - added} known fleet hosts in {env}.")
