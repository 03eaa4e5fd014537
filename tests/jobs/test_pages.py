"""Server-rendered pages of jobs, templates and schedules: they render, act through services and
show refusals as messages."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import JobSchedule
from ops_portal.jobs.templates import create_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def test_every_section_renders_for_a_viewer(client, prod):
    client.force_login(person(prod, Role.VIEWER))
    for path in ("/", "/jobs/", "/templates/", "/schedules/", "/approvals/", "/audit/", "/hosts/"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert client.get("/jobs/new/").status_code == 403


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
