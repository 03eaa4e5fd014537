"""Fleet hosts registered in the portal, with groups and variables, for configuration jobs."""
import uuid
from dataclasses import dataclass

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services as inventory
from tests import factories
from tests.helpers import act, fleet_credential, fleet_host, person

FLEET_HOSTS = 3


@dataclass
class ConfigFleet:
    env: object
    admin: object  # an Actor
    operator: object  # an Actor
    hosts: list
    fleet: object
    workdir: str  # a directory of this test's own on every host

    def exec(self, host, command):
        return self.fleet.exec(host.name, command)

    def read(self, host, path):
        result = self.exec(host, ["cat", path])
        return result.stdout if result.exit_code == 0 else None

    def stat(self, host, path):
        return self.exec(host, ["stat", "-c", "%a %U %G", path]).stdout.strip()


@pytest.fixture
def cfleet(fleet, db):
    """The first fleet hosts in environment "cfg": all in group "app" (port 8080, greeting "hello");
    the first also in group "zz-canary" (port 9090); the second overrides the greeting."""
    env = factories.environment("cfg")
    admin = act(person(env, Role.ADMIN))
    credential = fleet_credential(admin, env, fleet)
    app = inventory.create_group(admin, name="app", environment=env, variables={"port": 8080, "greeting": "hello"})
    canary = inventory.create_group(admin, name="zz-canary", environment=env, variables={"port": 9090})
    hosts = []
    for index, h in enumerate(fleet.hosts[:FLEET_HOSTS]):
        variables = {"greeting": "bonjour"} if index == 1 else {}
        host = fleet_host(admin, env, credential, h, tags=["cfg"], variables=variables,
                          groups=[app, canary] if index == 0 else [app])
        hosts.append(host)
    workdir = f"/etc/opsportal-test-{uuid.uuid4().hex[:10]}"
    for host in hosts:
        fleet.exec(host.name, ["mkdir", "-p", workdir]).check()
    yield ConfigFleet(env, admin, act(person(env, Role.OPERATOR)), hosts, fleet, workdir)
    for host in hosts:
        fleet.exec(host.name, ["rm", "-rf", workdir])
