"""A schedule with a limit runs its template on some of the targets the template's selector matches
(as a template launch's limit does): through the service, the API and the schedules page, with field
errors for a limit that is malformed or keeps nothing, and the limit in what a standing approval covers."""
import pytest
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.models import Host
from ops_portal.jobs import schedules
from ops_portal.jobs.models import JobSchedule
from ops_portal.jobs.templates import create_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(env):
    for name in ("web-1", "web-2", "web-3", "db-1"):
        factories.host(env, name, transport=Transport.LOCAL)
    return create_template(act(person(env, Role.ADMIN)), name="uptime", environment=env, action="host.command",
                           selector={"pattern": "web-*"}, action_params={"command": "uptime"})


def _fire(schedule):
    return schedules.fire(schedule.pk, timezone.now().replace(second=10, microsecond=0))


def _targets(job):
    return list(job.targets.order_by("index").values_list("name", flat=True))


def test_a_limited_schedule_runs_only_the_kept_targets(env, template):
    actor = act(person(env, Role.ADMIN))
    schedule = schedules.create_schedule(actor, name="two", template=template, kind="cron", cron="* * * * *",
                                         limit="web-3 web-1")
    assert schedule.limit == "web-3, web-1"
    run = _fire(schedule)
    assert run.outcome == "launched", run.detail
    assert _targets(run.job) == ["web-1", "web-3"]
    created = AuditEvent.objects.get(action="jobschedule.create")
    assert created.after["limit"] == "web-3, web-1"


def test_clearing_the_limit_runs_every_target_again(env, template):
    actor = act(person(env, Role.ADMIN))
    schedule = schedules.create_schedule(actor, name="s", template=template, kind="cron", cron="* * * * *",
                                         limit="web-2")
    schedules.update_schedule(actor, schedule, limit="")
    assert _targets(_fire(JobSchedule.objects.get(pk=schedule.pk)).job) == ["web-1", "web-2", "web-3"]


def test_a_limit_that_no_longer_keeps_a_target_fails_the_run_with_the_reason(env, template):
    actor = act(person(env, Role.ADMIN))
    schedule = schedules.create_schedule(actor, name="s", template=template, kind="cron", cron="* * * * *",
                                         limit="web-2")
    Host.objects.filter(name="web-2").delete()
    run = _fire(schedule)
    assert run.outcome == "failed" and "keeps none of the 2 targets" in run.detail
    assert not schedule.jobs.exists()


@pytest.mark.parametrize("limit, message", [
    ("db-1", "keeps none of the 3 targets"),
    ("web-1;reboot", "Not a name or pattern"),
    ("x" * 1001, "1000"),
])
def test_the_api_answers_400_for_a_bad_limit_and_stores_nothing(api, env, template, limit, message):
    api.force_authenticate(person(env, Role.ADMIN))
    response = api.post("/api/schedules/", {"name": "s", "template": template.pk, "kind": "cron",
                                            "cron": "0 3 * * *", "limit": limit}, format="json")
    assert response.status_code == 400, response.content
    assert message in str(response.json()["error"]["fields"]["limit"])
    assert not JobSchedule.objects.exists()
    good = api.post("/api/schedules/", {"name": "s", "template": template.pk, "kind": "cron",
                                        "cron": "0 3 * * *", "limit": "web-2"}, format="json")
    assert good.status_code == 201 and good.json()["limit"] == "web-2"


def test_the_schedules_page_creates_and_edits_a_limited_schedule(client, env, template):
    admin = person(env, Role.ADMIN)
    client.force_login(admin)
    response = client.post("/schedules/", {"name": "nightly", "template": template.pk, "kind": "cron",
                                           "cron": "0 3 * * *", "timezone": "UTC", "missed_policy": "skip",
                                           "limit": "web-1"})
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = JobSchedule.objects.get(name="nightly")
    assert schedule.limit == "web-1"
    page = client.get("/schedules/").content.decode()
    assert "limit <code>web-1</code>" in page
    bad = client.post(f"/schedules/{schedule.pk}/edit/", {"name": "nightly", "template": template.pk, "kind": "cron",
                                                          "cron": "0 3 * * *", "timezone": "UTC",
                                                          "missed_policy": "skip", "limit": "db-1"})
    assert bad.status_code == 200 and "keeps none of the 3 targets" in bad.content.decode()
    assert JobSchedule.objects.get(pk=schedule.pk).limit == "web-1"


def test_a_standing_approval_covers_the_limit_and_is_asked_again_when_it_changes(env, template):
    ApprovalPolicy.objects.create(name="gate", environment=env, templates=["uptime"])
    actor = act(person(env, Role.ADMIN))
    schedule = schedules.create_schedule(actor, name="s", template=template, kind="interval", interval_seconds=60,
                                         limit="web-1")
    first = schedule.standing_request
    assert first is not None and first.plan_hash
    schedules.update_schedule(actor, schedule, limit="web-2")
    renewed = JobSchedule.objects.get(pk=schedule.pk).standing_request
    assert renewed.pk != first.pk and renewed.plan_hash != first.plan_hash
    assert [t["name"] for t in renewed.plan["targets"]] == ["web-2"]
