"""Server-rendered pages of hosts, credentials, artifacts and compliance: they render, act through
services and show only what the viewer may see."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.jobs.models import Job
from tests import factories
from tests.helpers import person

pytestmark = pytest.mark.django_db


def test_the_host_page_shows_facts_compliance_and_jobs(client, prod):
    from ops_portal.inventory import services as inventory
    from ops_portal.inventory.models import Host

    host = Host.objects.get(name="web-1")
    inventory.store_facts(host.pk, {"os": {"pretty_name": "Debian GNU/Linux 12"}, "kernel": "6.1", "cpu_count": 2,
                                    "memory": {"total": 2 ** 30, "available": 2 ** 29}, "disks": [], "ipv4": [],
                                    "ipv6": [], "listening_tcp": [], "pending_reboot": False})
    inventory.store_facts(host.pk, {"os": {"pretty_name": "Debian GNU/Linux 12"}, "kernel": "6.2", "cpu_count": 2})
    inventory.store_compliance(host.pk, [{"check": "etc_world_writable_files", "passed": False,
                                          "evidence": "1 world-writable: /etc/x"}])
    client.force_login(person(prod, Role.VIEWER))
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    assert "Debian GNU/Linux 12" in page and "kernel 6.1 → 6.2" in page
    assert "/etc/x" in page and "Gather facts" not in page  # viewers cannot launch
    report = client.get("/compliance/", {"environment": "production"}).content.decode()
    assert "etc_world_writable_files" in report and "fail" in report


def test_an_operator_gathers_facts_from_the_host_page(client, prod):
    from ops_portal.inventory.models import Host

    host = Host.objects.get(name="web-1")
    client.force_login(person(prod, Role.OPERATOR))
    response = client.post(f"/hosts/{host.pk}/run/host.facts/")
    job = Job.objects.get()
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert job.action == "host.facts" and job.state == "pending_approval"  # production: a person asked


def test_a_directory_upload_becomes_a_checked_release_archive(api, prod):
    import io
    import tarfile

    from django.core.files.uploadedfile import SimpleUploadedFile

    api.force_authenticate(person(prod, Role.ADMIN))
    files = [SimpleUploadedFile("start.sh", b"#!/bin/sh\necho hi\n"), SimpleUploadedFile("VERSION", b"2.0")]
    response = api.post("/api/artifacts/", {"name": "app-2", "environment": "production", "files": files,
                                            "paths": ["bin/start.sh", "VERSION"]}, format="multipart")
    assert response.status_code == 201, response.content
    from ops_portal.inventory.models import Artifact

    with tarfile.open(fileobj=io.BytesIO(bytes(Artifact.objects.get().data)), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["VERSION", "bin/start.sh"]
    evil = api.post("/api/artifacts/", {"name": "evil", "environment": "production",
                                        "files": [SimpleUploadedFile("passwd", b"x")], "paths": ["../../etc/passwd"]},
                    format="multipart")
    assert evil.status_code == 400
    assert "data" not in response.json() and response.json()["file_count"] == 2


def test_admins_add_and_import_hosts_and_manage_credentials_on_pages(client, prod):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from ops_portal.inventory.models import Credential, Host
    from tests.keys import ED25519_PRIVATE, new_private_key

    client.force_login(person(prod, Role.ADMIN))
    response = client.post("/credentials/", {"name": "deploy", "environment": prod.pk, "username": "deploy",
                                             "private_key": ED25519_PRIVATE}, follow=True)
    assert "Credential stored." in response.content.decode() and "PRIVATE KEY" not in response.content.decode()
    credential = Credential.objects.get()
    response = client.post("/hosts/", {"form": "host", "host-name": "api-1", "host-address": "10.1.1.1",
                                       "host-port": 22, "host-transport": "ssh", "host-environment": prod.pk,
                                       "host-credential": credential.pk, "host-tags": "api, blue"})
    assert Host.objects.get(name="api-1").tags == ["api", "blue"]
    bad = client.post("/hosts/", {"form": "host", "host-name": "x; reboot", "host-address": "$(id)",
                                  "host-port": 22, "host-transport": "ssh", "host-environment": prod.pk})
    assert bad.status_code == 200 and not Host.objects.filter(address="$(id)").exists()
    upload = SimpleUploadedFile("hosts.csv", b"name,address\napi-2,10.1.1.2\n")
    response = client.post("/hosts/", {"form": "import", "import-format": "csv", "import-file": upload,
                                       "import-environment": prod.pk, "import-credential": "deploy"}, follow=True)
    assert "Imported: 1 created" in response.content.decode()
    assert Host.objects.get(name="api-2").credential == credential
    old = credential.fingerprint
    client.post(f"/credentials/{credential.pk}/rotate/", {"private_key": new_private_key()})
    credential.refresh_from_db()
    assert credential.fingerprint != old and credential.rotated is not None


def test_the_host_page_lists_only_jobs_the_viewer_may_see_after_the_host_moved(client, prod):
    from ops_portal.inventory.models import Host

    staging = factories.environment("staging")
    host = Host.objects.get(name="web-1")
    # People's jobs (named launchers): the portal's own are hidden from the host page anyway.
    old = Job.objects.create(name="secret-staging-job", environment=staging, action="host.command", plan_hash="x",
                             created_by_name="olga")
    old.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
    new = Job.objects.create(name="visible-prod-job", environment=prod, action="host.command", plan_hash="x",
                             created_by_name="olga")
    new.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
    client.force_login(person(prod, Role.VIEWER))
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    assert "visible-prod-job" in page and "secret-staging-job" not in page
