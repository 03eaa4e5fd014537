"""Inventory import and export: CSV and Ansible YAML, all or nothing, audited."""
import pytest
import yaml

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.models import Host, HostGroup
from tests import factories

pytestmark = pytest.mark.django_db

CSV = """name,address,port,username,environment,groups,tags,variables
web-1,10.0.0.1,22,deploy,alpha,web;frontend,blue,"{""tier"": ""web""}"
web-2,10.0.0.2,2222,,alpha,web,green,
"""

ANSIBLE = """
all:
  hosts:
    bastion:
      ansible_host: 10.0.9.9
  children:
    db:
      vars:
        backup: nightly
      hosts:
        db-1:
          ansible_host: 10.0.1.1
          ansible_port: 2200
          ansible_user: postgres
          shard: 1
"""


@pytest.fixture
def admin(envs, make_user):
    return make_user(Role.ADMIN, envs[0])


def test_csv_import_creates_hosts_groups_and_audit_rows(api, admin, envs):
    api.force_authenticate(admin)
    response = api.post("/api/inventory/import/", {"format": "csv", "content": CSV}, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 2, "updated": 0}
    web1 = Host.objects.get(name="web-1")
    assert (web1.username, sorted(g.name for g in web1.groups.all()), web1.tags, web1.variables) == (
        "deploy", ["frontend", "web"], ["blue"], {"tier": "web"})
    assert Host.objects.get(name="web-2").port == 2222
    assert AuditEvent.objects.filter(action="host.create").count() == 2
    assert AuditEvent.objects.filter(action="host.import").get().extra == {"created": 2, "updated": 0}


def test_a_bad_row_imports_nothing(api, admin, envs):
    api.force_authenticate(admin)
    bad = CSV + "bad host;rm,10.0.0.3,22,,alpha,,,\n"
    response = api.post("/api/inventory/import/", {"format": "csv", "content": bad}, format="json")
    assert response.status_code == 400
    assert any("line 4" in error for error in response.json()["error"]["fields"]["file"])
    assert not Host.objects.exists() and not HostGroup.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="host").exists()


def test_importing_into_an_environment_you_do_not_manage_is_refused(api, admin, envs):
    api.force_authenticate(admin)
    response = api.post("/api/inventory/import/", {"format": "csv", "content": CSV.replace(",alpha,", ",beta,")},
                        format="json")
    assert response.status_code == 403 and not Host.objects.exists() and not HostGroup.objects.exists()


def test_existing_hosts_are_updated_only_when_asked(api, admin, envs):
    factories.host(envs[0], "web-1", address="10.9.9.9")
    api.force_authenticate(admin)
    refused = api.post("/api/inventory/import/", {"format": "csv", "content": CSV}, format="json")
    assert refused.status_code == 400 and "already exists" in str(refused.json())
    ok = api.post("/api/inventory/import/", {"format": "csv", "content": CSV, "update_existing": True},
                  format="json")
    assert ok.json() == {"created": 1, "updated": 1}
    assert Host.objects.get(name="web-1").address == "10.0.0.1"


def test_ansible_yaml_import_and_export_round_trip(api, admin, envs):
    api.force_authenticate(admin)
    response = api.post("/api/inventory/import/", {"format": "ansible", "content": ANSIBLE, "environment": "alpha"},
                        format="json")
    assert response.status_code == 201, response.content
    db1 = Host.objects.get(name="db-1")
    assert (db1.address, db1.port, db1.username, db1.variables) == ("10.0.1.1", 2200, "postgres", {"shard": 1})
    assert HostGroup.objects.get(name="db").variables == {"backup": "nightly"}
    exported = yaml.safe_load(api.get("/api/inventory/export/", {"file_format": "ansible"}).content)
    assert exported["all"]["children"]["db"]["vars"] == {"backup": "nightly"}
    assert exported["all"]["children"]["db"]["hosts"]["db-1"]["ansible_port"] == 2200
    assert exported["all"]["hosts"]["bastion"]["ansible_host"] == "10.0.9.9"
    csv_text = api.get("/api/inventory/export/", {"file_format": "csv"}).content.decode()
    assert csv_text.splitlines()[0].startswith("name,address,port") and "db-1,10.0.1.1,2200" in csv_text


def test_export_shows_only_hosts_you_may_see(api, make_user, envs):
    factories.host(envs[0], "mine"), factories.host(envs[1], "theirs")
    api.force_authenticate(make_user(Role.VIEWER, envs[0]))
    text = api.get("/api/inventory/export/", {"file_format": "csv"}).content.decode()
    assert "mine" in text and "theirs" not in text
    assert api.get("/api/inventory/export/", {"file_format": "xml"}).status_code == 400
    assert api.get("/api/inventory/export/", {"fmt": "csv"}).status_code == 400


def test_malformed_yaml_is_a_400(api, admin):
    api.force_authenticate(admin)
    response = api.post("/api/inventory/import/", {"format": "ansible", "content": "all: [", "environment": "alpha"},
                        format="json")
    assert response.status_code == 400


def test_register_fleet_adds_hosts_with_pinned_keys_once(tmp_path, db):
    import json

    from django.core.management import call_command

    from ops_portal.inventory.models import Credential
    from tests.keys import ED25519_PRIVATE

    factories.environment("staging")
    key = tmp_path / "id_ed25519"
    key.write_text(ED25519_PRIVATE)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"run_id": "r1", "user": "root", "private_key": str(key), "hosts": [
        {"name": "host-1", "address": "127.0.0.1", "port": 32801, "user": "root", "host_key": "ssh-ed25519 AAAA1"},
        {"name": "host-2", "address": "127.0.0.1", "port": 32802, "user": "root", "host_key": "ssh-ed25519 AAAA2"},
    ]}))
    call_command("register_fleet", str(inventory))
    call_command("register_fleet", str(inventory))  # idempotent
    assert Credential.objects.get().name == "fleet-r1"
    hosts = {h.name: h for h in Host.objects.all()}
    assert set(hosts) == {"host-1", "host-2"}
    assert hosts["host-2"].port == 32802 and hosts["host-2"].host_key == "ssh-ed25519 AAAA2"
    assert hosts["host-1"].tags == ["fleet"] and hosts["host-1"].environment.name == "staging"


def test_sites_round_trip_through_csv_and_ansible_exports(api, admin, envs):
    paris = factories.site("paris")
    factories.host(envs[0], "near", address="10.0.0.1", site=paris)
    factories.host(envs[0], "nowhere", address="10.0.0.2")
    api.force_authenticate(admin)
    exported = yaml.safe_load(api.get("/api/inventory/export/", {"file_format": "ansible"}).content)
    assert exported["all"]["hosts"]["near"]["opsportal_site"] == "paris"
    assert "opsportal_site" not in exported["all"]["hosts"]["nowhere"]
    csv_text = api.get("/api/inventory/export/", {"file_format": "csv"}).content.decode()
    assert csv_text.splitlines()[0].endswith(",site") and csv_text.splitlines()[1].endswith(",paris")

    # Moved off its site, then both files bring the site back on an update.
    Host.objects.filter(name="near").update(site=None)
    response = api.post("/api/inventory/import/", {"format": "csv", "content": csv_text, "update_existing": True},
                        format="json")
    assert response.status_code == 201, response.content
    assert Host.objects.get(name="near").site == paris and Host.objects.get(name="nowhere").site is None
    Host.objects.filter(name="near").update(site=None)
    response = api.post("/api/inventory/import/", {"format": "ansible", "environment": "alpha",
                                                   "content": yaml.safe_dump(exported), "update_existing": True},
                        format="json")
    assert response.status_code == 201, response.content
    assert Host.objects.get(name="near").site == paris


def test_an_unknown_site_imports_nothing_and_a_file_without_sites_keeps_them(api, admin, envs):
    paris = factories.site("paris")
    factories.host(envs[0], "web-1", address="10.0.0.1", site=paris)
    api.force_authenticate(admin)
    bad = "name,address,environment,site\nweb-9,10.0.0.9,alpha,atlantis\n"
    response = api.post("/api/inventory/import/", {"format": "csv", "content": bad}, format="json")
    assert response.status_code == 400 and "no site 'atlantis'" in str(response.json())
    assert not Host.objects.filter(name="web-9").exists()
    # CSV has no site column: web-1 is updated and stays on its site.
    ok = api.post("/api/inventory/import/", {"format": "csv", "content": CSV, "update_existing": True}, format="json")
    assert ok.status_code == 201, ok.content
    assert Host.objects.get(name="web-1").site == paris and Host.objects.get(name="web-1").address == "10.0.0.1"
