"""Server-rendered pages of jobs, approvals and schedules: they render, act through services and
show refusals as messages."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job, JobSchedule
from ops_portal.jobs.templates import create_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def prod():
    env = factories.environment("production", is_production=True)
    factories.host(env, "web-1", transport=Transport.LOCAL)
    ApprovalPolicy.objects.create(name="always", environment=env, all_work=True)
    return env


def test_every_section_renders_for_a_viewer(client, prod):
    client.force_login(person(prod, Role.VIEWER))
    for path in ("/", "/jobs/", "/templates/", "/schedules/", "/approvals/", "/audit/", "/hosts/"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert client.get("/jobs/new/").status_code == 403


def test_an_approver_decides_on_the_request_page_and_the_job_page_shows_it(client, prod,
                                                                           django_capture_on_commit_callbacks):
    operator = person(prod, Role.OPERATOR)
    job = launch_adhoc(act(operator, source="web"), environment=prod, action="host.command",
                            values={"command": "true"}, selector={"all": True})
    client.force_login(operator)
    own = client.get(f"/approvals/{job.approval_request_id}/").content.decode()
    assert "someone else must decide" in own and 'value="approve"' not in own
    approver = person(prod, Role.APPROVER)
    client.force_login(approver)
    inbox = client.get("/approvals/").content.decode()
    assert f"Job #{job.pk}" in inbox
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/approvals/{job.approval_request_id}/",
                               {"decision": "approve", "comment": "ship it"}, follow=True)
    assert "Approved." in response.content.decode()
    assert Job.objects.get(pk=job.pk).state == "queued"
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "approved by" in page and "ship it" in page


def test_a_refused_decision_is_a_message_not_an_error(client, prod):
    operator = person(prod, Role.OPERATOR)
    job = launch_adhoc(act(operator, source="web"), environment=prod, action="host.command",
                            values={"command": "true"}, selector={"all": True})
    client.force_login(operator)
    response = client.post(f"/approvals/{job.approval_request_id}/", {"decision": "approve"}, follow=True)
    assert "Nobody approves their own request" in response.content.decode()
    assert ApprovalRequest.objects.get(pk=job.approval_request_id).state == "pending"


def test_an_admin_creates_pauses_and_deletes_a_schedule(client, prod):
    admin = person(prod, Role.ADMIN)
    template = create_template(act(admin, source="web"), name="tick", environment=prod,
                                    action="host.command", selector={"all": True},
                                    action_params={"command": "true"})
    client.force_login(admin)
    bad = client.post("/schedules/", {"name": "s", "template": template.pk, "kind": "cron", "cron": "99 * * * *",
                                      "timezone": "UTC", "missed_policy": "skip"})
    assert "Not a valid cron expression" in bad.content.decode() and not JobSchedule.objects.exists()
    response = client.post("/schedules/", {"name": "s", "template": template.pk, "kind": "cron",
                                           "cron": "0 4 * * *", "timezone": "Asia/Tokyo", "missed_policy": "skip"},
                           follow=True)
    assert "Schedule created." in response.content.decode()
    schedule = JobSchedule.objects.get()
    assert "standing: pending" in response.content.decode()  # production needs a standing approval
    client.post(f"/schedules/{schedule.pk}/toggle/")
    assert not JobSchedule.objects.get().enabled
    client.post(f"/schedules/{schedule.pk}/delete/")
    assert not JobSchedule.objects.exists()
    assert {"jobschedule.create", "jobschedule.update", "jobschedule.delete"} <= set(
        AuditEvent.objects.values_list("action", flat=True))


def test_global_admins_tune_built_in_periodic_work(client, prod):
    from django_celery_beat.models import PeriodicTask

    from ops_portal.core.periodic import ensure_builtins

    ensure_builtins()
    task = PeriodicTask.objects.get(name="jobs: reap lost jobs")
    client.force_login(factories.superuser())
    client.post(f"/schedules/system/{task.pk}/", {"every_seconds": "45", "enabled": "on"})
    task.refresh_from_db()
    assert task.interval.every == 45 and task.enabled
    event = AuditEvent.objects.get(action="systemschedule.update")
    assert event.before["every_seconds"] == 30 and event.after["every_seconds"] == 45


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


def test_the_jobs_page_hides_the_portals_own_jobs_unless_asked(client, prod):
    from ops_portal.jobs.system import launch_everywhere

    launch_everywhere("host.facts", name="Inventory refresh")
    operator = person(prod, Role.OPERATOR)
    launch_adhoc(act(operator, source="web"), environment=prod, action="host.command",
                      values={"command": "true"}, selector={"all": True})
    client.force_login(operator)
    people = client.get("/jobs/").content.decode()
    assert "Run a command" in people and "Inventory refresh" not in people
    system = client.get("/jobs/", {"system": "true"}).content.decode()
    assert "Inventory refresh" in system and "Run a command" not in system


def test_the_host_page_lists_only_jobs_the_viewer_may_see_after_the_host_moved(client, prod):
    from ops_portal.inventory.models import Host

    staging = factories.environment("staging")
    host = Host.objects.get(name="web-1")
    old = Job.objects.create(name="secret-staging-job", environment=staging, action="host.command", plan_hash="x")
    old.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
    new = Job.objects.create(name="visible-prod-job", environment=prod, action="host.command", plan_hash="x")
    new.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
    client.force_login(person(prod, Role.VIEWER))
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    assert "visible-prod-job" in page and "secret-staging-job" not in page
