"""Fleet hosts registered in the portal for program jobs: a supervisord host from `fleet`, and the
systemd and PM2 hosts of `fleet_kinds` (their own run, their own key)."""
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services as inventory
from tests import factories
from tests.browser.conftest import browser, page  # noqa: F401 (the Chromium fixtures of test_browser.py)
from tests.programs.helpers import act, person


@dataclass
class ProgramFleet:
    env: object
    admin: object  # an Actor
    operator: object  # an Actor
    hosts: dict  # kind -> inventory Host: "supervisord", "systemd", "pm2"
    runs: dict  # kind -> (fleet run, fleet host)
    tag: str  # unique per test: program names start with it

    def exec(self, kind, argv):
        run, host = self.runs[kind]
        return run.exec(host.name, argv)

    def name(self, what):
        return f"{self.tag}-{what}"


def _register(actor, env, run, hosts, credential_name):
    credential = inventory.create_credential(actor, name=credential_name, environment=env, username="root",
                                             private_key=Path(run.key_path).read_text())
    return [inventory.create_host(actor, name=h.name, address=h.address, port=h.port, username=h.user,
                                  environment=env, credential=credential, host_key=h.host_key) for h in hosts]


@pytest.fixture
def pfleet(fleet, fleet_kinds, systemd_host, pm2_host, db):
    """Environment "prog" with the first supervisord host, the systemd host and the PM2 host."""
    env = factories.environment("prog")
    admin = act(person(env, Role.ADMIN))
    base = fleet.hosts[0]
    (plain,) = _register(admin, env, fleet, [base], "fleet-key")
    unit_host, pm2 = _register(admin, env, fleet_kinds, [systemd_host, pm2_host], "kinds-key")
    yield ProgramFleet(env, admin, act(person(env, Role.OPERATOR)),
                       {"supervisord": plain, "systemd": unit_host, "pm2": pm2},
                       {"supervisord": (fleet, base), "systemd": (fleet_kinds, systemd_host),
                        "pm2": (fleet_kinds, pm2_host)},
                       f"t{uuid.uuid4().hex[:6]}")
