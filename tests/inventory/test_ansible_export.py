"""The Ansible inventory export read by the real `ansible-inventory`, the portal's own machine as
`ansible_connection: local`, and groups, group variables and tags through export and import."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services, transfer
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.models import Host, HostGroup
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db

ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


@pytest.fixture
def inventory_world(db):
    env = factories.environment("alpha")
    admin = act(person(None, Role.ADMIN))  # local hosts: administrators of all environments
    web = services.create_group(admin, name="web", environment=env,
                                variables={"port": 8080, "motd": "hi $(id) {{ x }}", "nested": {"a": [1, 2]}})
    db_group = services.create_group(admin, name="db", environment=env, variables={})
    services.create_host(admin, name="portal", address="127.0.0.1", environment=env, transport=Transport.LOCAL,
                         tags=["self"])
    services.create_host(admin, name="web-1", address="10.0.0.1", port=2222, username="deploy", environment=env,
                         groups=[web, db_group], tags=["blue", "canary"], variables={"tier": "front"})
    services.create_host(admin, name="db-1", address="10.0.0.2", environment=env, groups=[db_group])
    return env, admin


def _state():
    hosts = {h.name: (h.address, h.port, h.transport, sorted(g.name for g in h.groups.all()), list(h.tags), h.variables)
             for h in Host.objects.prefetch_related("groups")}
    return hosts, {g.name: g.variables for g in HostGroup.objects.all()}


def test_ansible_inventory_reads_the_export_and_the_portal_is_a_local_connection(inventory_world, tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text(transfer.export_ansible(Host.objects.all()))
    listed = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(path), "--list"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
                                 "HOME": str(tmp_path)}, timeout=120)
    assert listed.returncode == 0, listed.stderr
    inventory = json.loads(listed.stdout)
    hostvars = inventory["_meta"]["hostvars"]
    assert hostvars["portal"]["ansible_connection"] == "local" and "ansible_port" not in hostvars["portal"]
    assert hostvars["web-1"]["ansible_host"] == "10.0.0.1" and hostvars["web-1"]["ansible_port"] == 2222
    assert hostvars["web-1"]["ansible_user"] == "deploy" and hostvars["web-1"]["tier"] == "front"
    assert hostvars["web-1"]["opsportal_tags"] == ["blue", "canary"]
    assert hostvars["web-1"]["port"] == 8080 and hostvars["web-1"]["nested"] == {"a": [1, 2]}  # group variables
    assert "ansible_connection" not in hostvars["db-1"]
    assert sorted(inventory["web"]["hosts"]) == ["web-1"] and sorted(inventory["db"]["hosts"]) == ["db-1", "web-1"]
    assert "portal" in inventory["ungrouped"]["hosts"]


def test_groups_group_variables_tags_and_the_local_transport_round_trip_through_export_and_import(inventory_world):
    env, admin = inventory_world
    before = _state()
    text = transfer.export_ansible(Host.objects.all())
    for host in Host.objects.all():
        services.delete_host(admin, host)
    for group in HostGroup.objects.all():
        services.delete_group(admin, group)
    rows, group_vars = transfer.parse_ansible(text, env.name)
    assert transfer.apply_import(admin, rows, group_vars) == {"created": 3, "updated": 0}
    after = _state()
    # Groups without hosts are not exported; every group here has some.
    assert after == before
    assert Host.objects.get(name="portal").transport == Transport.LOCAL


def test_a_host_variable_cannot_replace_how_ansible_reaches_the_host(inventory_world):
    env, admin = inventory_world
    host = Host.objects.get(name="db-1")
    services.update_host(admin, host, variables={"ansible_host": "203.0.113.9", "ansible_connection": "local"})
    exported = transfer.export_ansible(Host.objects.filter(name="db-1"))
    assert "203.0.113.9" not in exported and "ansible_connection" not in exported
