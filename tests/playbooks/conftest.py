"""Fleet hosts in environment "ans" (group "web" with variables), a directory project holding the
test's playbooks, and the people who manage and run them."""
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services as inventory
from ops_portal.projects import services as projects
from tests import factories
from tests.helpers import act, fleet_credential, fleet_host, person
from tests.jobs.helpers import wait_job

FLEET_HOSTS = 3


@dataclass
class Ansible:
    env: object
    admin: object  # an Actor, administrator of all environments (projects)
    operator: object
    hosts: list
    fleet: object
    source: Path  # the project's directory
    project: object
    workdir: str  # a directory of this test's own on every host

    def write(self, name, text):
        (self.source / name).parent.mkdir(parents=True, exist_ok=True)
        (self.source / name).write_text(text)

    def sync(self):
        job = wait_job(projects.launch_sync(self.operator, self.project), "succeeded", timeout=120)
        self.project.refresh_from_db()
        return job

    def exec(self, host, command):
        return self.fleet.exec(host.name, command)

    def read(self, host, path):
        result = self.exec(host, ["cat", path])
        return result.stdout if result.exit_code == 0 else None


@pytest.fixture
def ans(fleet, db, tmp_path):
    env = factories.environment("ans")
    admin = act(person(None, Role.ADMIN))
    credential = fleet_credential(admin, env, fleet)
    web = inventory.create_group(admin, name="web", environment=env, variables={"port": 8080, "greeting": "hello"})
    hosts = [fleet_host(admin, env, credential, h, groups=[web] if i < 2 else [],
                        variables={"greeting": "bonjour"} if i == 1 else {})
             for i, h in enumerate(fleet.hosts[:FLEET_HOSTS])]
    workdir = f"/tmp/opsportal-ansible-test-{uuid.uuid4().hex[:10]}"
    for host in hosts:
        fleet.exec(host.name, ["mkdir", "-p", workdir]).check()
    source = tmp_path / "playbooks"
    source.mkdir()
    project = projects.create_project(admin, name="site", environment=env, kind="directory", path=str(source),
                                      branch="")
    yield Ansible(env, admin, act(person(env, Role.OPERATOR)), hosts, fleet, source, project, workdir)
    for host in hosts:
        fleet.exec(host.name, ["rm", "-rf", workdir])
