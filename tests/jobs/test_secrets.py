"""Secret parameters: typed by the template (or the action), encrypted at rest, never shown to
anyone (API, pages, audit, approval plans, output), re-used by relaunches and schedules, and
still given to the running action."""
import json

import pytest
from django.db import connection

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import schedules
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.launch import launch as launch_template
from ops_portal.jobs.launch import relaunch
from ops_portal.jobs.models import Job, JobEvent, JobSchedule
from ops_portal.jobs.templates import create_template, update_template
from tests import factories
from tests.helpers import act, person
from tests.jobs.helpers import wait_job

SECRET = "curl -H 'Authorization: Bearer tok-9f8e7d6c5b4a' https://deploy.example/hook"
SECRET_PARAM = [{"name": "command", "type": "secret", "required": True, "label": "Command with a token"}]


def secret_template(env, name="hook"):
    return create_template(act(person(env, Role.ADMIN)), name=name, environment=env, action="host.command",
                                    selector={"all": True}, parameters=SECRET_PARAM)


def raw_rows(table, pk):
    """Every column of a row as the database stores it (text), decrypted by nobody."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def everything_audited():
    return json.dumps([[e.action, e.before, e.after, e.extra] for e in AuditEvent.objects.all()])


@pytest.mark.django_db
def test_a_template_secret_is_never_stored_or_shown_in_clear(api, client):
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    ApprovalPolicy.objects.create(name="gate", environment=env, all_work=True)
    template = secret_template(env)
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/job-templates/{template.pk}/launch/", {"params": {"command": SECRET}}, format="json")
    assert response.status_code == 201, response.content
    assert SECRET not in response.content.decode()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.params == {"command": "<secret>"} and json.loads(job.secret_params) == {"command": SECRET}

    viewer = person(env, Role.VIEWER)
    api.force_authenticate(viewer)
    body = api.get(f"/api/jobs/{job.pk}/").content.decode()
    assert SECRET not in body and "<secret>" in body
    assert SECRET not in api.get("/api/jobs/").content.decode()
    client.force_login(viewer)
    page = client.get(f"/jobs/{job.pk}/")
    assert page.status_code == 200 and SECRET not in page.content.decode()
    request = job.approval_request
    assert SECRET not in api.get(f"/api/approvals/{request.pk}/").content.decode()
    assert SECRET not in client.get(f"/approvals/{request.pk}/").content.decode()

    assert SECRET not in everything_audited() and "tok-9f8e7d6c5b4a" not in everything_audited()
    assert "tok-9f8e7d6c5b4a" not in raw_rows("jobs_job", job.pk)
    assert "tok-9f8e7d6c5b4a" not in raw_rows("approvals_approvalrequest", request.pk)


@pytest.mark.django_db
def test_a_relaunch_reuses_the_encrypted_secret_without_showing_it(api):
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    job = launch_template(act(person(env, Role.OPERATOR)), secret_template(env), {"command": SECRET})
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/jobs/{job.pk}/relaunch/")
    assert response.status_code == 201, response.content
    assert SECRET not in response.content.decode()
    again = Job.objects.get(pk=response.json()["id"])
    assert again.params == {"command": "<secret>"} and json.loads(again.secret_params) == {"command": SECRET}
    assert again.plan_hash == job.plan_hash  # the same plan, secrets compared by HMAC
    assert "tok-9f8e7d6c5b4a" not in everything_audited()


@pytest.mark.django_db
def test_a_job_whose_secret_is_gone_is_not_relaunched_with_the_marker():
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    job = launch_template(act(person(env, Role.OPERATOR)), secret_template(env), {"command": SECRET})
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, secret_params="")
    with pytest.raises(Exception, match="not stored"):
        relaunch(act(person(env, Role.OPERATOR)), Job.objects.get(pk=job.pk))


@pytest.mark.django_db
def test_a_schedules_secret_is_encrypted_at_rest_kept_on_edits_and_fired_into_the_job(api):
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    template = secret_template(env)
    admin = person(env, Role.ADMIN)
    api.force_authenticate(admin)
    response = api.post("/api/schedules/", {"name": "nightly", "template": template.pk, "kind": "cron",
                                            "cron": "0 3 * * *", "secret_values": {"command": SECRET}},
                        format="json")
    assert response.status_code == 201, response.content
    assert SECRET not in response.content.decode() and response.json()["secrets_set"] == ["command"]
    pk = response.json()["id"]
    assert "tok-9f8e7d6c5b4a" not in raw_rows("jobs_jobschedule", pk)
    edited = api.patch(f"/api/schedules/{pk}/", {"params": {}, "cron": "0 4 * * *"}, format="json")
    assert edited.status_code == 200, edited.content
    assert edited.json()["secrets_set"] == ["command"]  # not sent back, still stored
    api.force_authenticate(person(env, Role.VIEWER))
    assert SECRET not in api.get(f"/api/schedules/{pk}/").content.decode()

    run = schedules.fire(pk)
    assert run.outcome == "launched", run.detail
    assert run.job.params == {"command": "<secret>"} and json.loads(run.job.secret_params) == {"command": SECRET}
    assert "tok-9f8e7d6c5b4a" not in everything_audited()


@pytest.mark.django_db
def test_a_value_the_template_makes_secret_later_moves_out_of_its_schedules():
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    admin = act(person(env, Role.ADMIN))
    template = create_template(admin, name="hook", environment=env, action="host.command",
                                        selector={"all": True}, parameters=[{"name": "command", "type": "string"}])
    schedule = schedules.create_schedule(admin, name="s", template=template, kind="cron", cron="0 3 * * *",
                                         params={"command": SECRET})
    assert schedule.params == {"command": SECRET}
    update_template(admin, template, parameters=SECRET_PARAM)
    schedule = JobSchedule.objects.get(pk=schedule.pk)
    assert schedule.params == {} and json.loads(schedule.secret_params) == {"command": SECRET}
    assert "tok-9f8e7d6c5b4a" not in raw_rows("jobs_jobschedule", schedule.pk)
    assert AuditEvent.objects.filter(action="jobschedule.secrets_moved").exists()


@pytest.mark.django_db
def test_a_secret_parameter_may_not_carry_a_default_in_the_template(api):
    env = factories.environment("alpha")
    api.force_authenticate(person(env, Role.ADMIN))
    response = api.post("/api/job-templates/", {
        "name": "t", "environment": "alpha", "action": "host.command", "selector": {"all": True},
        "parameters": [{"name": "command", "type": "secret", "default": SECRET}]}, format="json")
    assert response.status_code == 400
    assert "no default" in json.dumps(response.json()) and SECRET not in response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.live
def test_the_action_gets_the_real_secret_and_its_output_never_shows_it(live_worker):
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    template = create_template(act(person(env, Role.ADMIN)), name="hook", environment=env, action="host.command",
                                        selector={"all": True}, parameters=SECRET_PARAM)
    # The command prints its own command line (so the secret value itself) and a value it computes.
    command = "tr '\\0' ' ' < /proc/$$/cmdline; echo; echo computed-$((6*7)) # tok-9f8e7d6c5b4a"
    job = launch_template(act(factories.superuser()), template, {"command": command})
    job = wait_job(job, JobState.SUCCEEDED)
    lines = list(JobEvent.objects.filter(job=job, kind="output").values_list("text", flat=True))
    assert "computed-42" in lines  # the action ran the real command
    assert "sh -c <secret> " in lines  # its own echo of the secret is masked
    assert not [text for text in JobEvent.objects.filter(job=job).values_list("text", flat=True)
                if "tok-9f8e7d6c5b4a" in text]


@pytest.mark.django_db
def test_the_migration_moves_secrets_stored_in_clear_before_this_fix():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("ops_portal.jobs.migrations.0004_move_template_secrets_out_of_params")
    env = factories.environment("alpha")
    template = secret_template(env)
    # Rows as the launch and schedules wrote them before: the secret in the public parameters.
    job = Job.objects.create(name="j", environment=env, action="host.command", plan_hash="x", template=template,
                             params={"command": SECRET})
    request = ApprovalRequest.objects.create(environment=env, subject_type="job", subject_id=job.pk, title="t",
                                             plan={"params": {"command": SECRET}}, plan_hash="x",
                                             expires_at="2100-01-01T00:00:00Z")
    schedule = JobSchedule.objects.create(name="s", template=template, kind="cron", cron="0 3 * * *",
                                          params={"command": SECRET})
    migration.forwards(apps, None)
    job.refresh_from_db()
    schedule.refresh_from_db()
    request.refresh_from_db()
    assert job.params == {"command": "<secret>"} and json.loads(job.secret_params) == {"command": SECRET}
    assert schedule.params == {} and json.loads(schedule.secret_params) == {"command": SECRET}
    assert request.plan == {"params": {"command": "<secret>"}}
    for table, pk in (("jobs_job", job.pk), ("jobs_jobschedule", schedule.pk),
                      ("approvals_approvalrequest", request.pk)):
        assert "tok-9f8e7d6c5b4a" not in raw_rows(table, pk)
