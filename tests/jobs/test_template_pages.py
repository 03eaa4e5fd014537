"""Job template pages: create, edit with the parameter builder, and delete, through the template
services (the API's rules, authorization and audit)."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.models import JobTemplate
from ops_portal.jobs.templates import create_template
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def form(env, **overrides):
    """What the template form posts: the template's fields and a management form of `rows` rows."""
    data = {"name": "restart-web", "description": "", "environment": env.pk, "action": "host.command",
            "selector": '{"all": true}', "action_params": "", "strategy": "", "timeout_seconds": "600",
            "target_timeout_seconds": "", "concurrency_limit": "", "queue": "default", "enabled": "on",
            "param-TOTAL_FORMS": "1", "param-INITIAL_FORMS": "0", "param-MIN_NUM_FORMS": "0",
            "param-MAX_NUM_FORMS": "50", "param-0-type": "string"}
    data.update(overrides)
    return data


def row(index, **fields):
    return {f"param-{index}-{key}": value for key, value in fields.items()}


def test_an_admin_creates_edits_and_deletes_a_template_with_a_parameter(client, env):
    admin = person(env, Role.ADMIN)
    client.force_login(admin)
    assert client.get("/templates/new/").status_code == 200
    response = client.post("/templates/new/", form(env, **row(0, name="command", label="Command", type="text",
                                                                     required="on", default="uptime")),
                           follow=True)
    assert "Template restart-web saved (version 1)." in response.content.decode()
    template = JobTemplate.objects.get()
    assert template.parameters == [{"name": "command", "label": "Command", "type": "text", "required": True,
                                    "default": "uptime"}]
    assert template.updated_by == admin
    # Edit: the existing row comes back filled in; change its default.
    page = client.get(f"/templates/{template.pk}/edit/").content.decode()
    assert 'value="command"' in page and "uptime" in page
    client.post(f"/templates/{template.pk}/edit/", form(env, **{"param-INITIAL_FORMS": "1"},
                                                        **row(0, name="command", type="text", default="id")))
    template.refresh_from_db()
    assert template.version == 2
    assert template.parameters == [{"name": "command", "type": "text", "required": False, "default": "id"}]
    # A row the action does not know (host.command has no "timeout"): the service's rule, in the form.
    refused = client.post(f"/templates/{template.pk}/edit/",
                          form(env, **{"param-TOTAL_FORMS": "2", "param-INITIAL_FORMS": "1"},
                               **row(0, name="command", type="text", default="id"),
                               **row(1, name="timeout", type="int", default="30", min="1", max="600")))
    assert refused.status_code == 200 and "host.command has no parameter timeout." in refused.content.decode()
    template.refresh_from_db()
    assert template.version == 2
    # Remove the parameter.
    client.post(f"/templates/{template.pk}/edit/", form(env, **{"param-TOTAL_FORMS": "1", "param-INITIAL_FORMS": "1"},
                                                        action_params='{"command": "true"}',
                                                        **row(0, name="command", type="text", DELETE="on")))
    template.refresh_from_db()
    assert template.parameters == [] and template.action_params == {"command": "true"} and template.version == 3
    # Delete asks first, naming the template; then deletes it.
    confirm = client.get(f"/templates/{template.pk}/delete/")
    assert "Delete job template" in confirm.content.decode() and "restart-web" in confirm.content.decode()
    assert JobTemplate.objects.exists()
    client.post(f"/templates/{template.pk}/delete/")
    assert not JobTemplate.objects.exists()
    actions = list(AuditEvent.objects.filter(object_type="jobs.jobtemplate").order_by("pk")
                   .values_list("action", "source"))
    assert actions == [("jobtemplate.create", "web"), ("jobtemplate.update", "web"), ("jobtemplate.update", "web"),
                       ("jobtemplate.delete", "web")]


def test_a_refused_parameter_shows_in_the_form_and_nothing_is_saved(client, env):
    client.force_login(person(env, Role.ADMIN))
    response = client.post("/templates/new/", form(env, **row(0, name="timeout", type="int")))
    assert response.status_code == 200
    assert "host.command has no parameter timeout." in response.content.decode()
    secret = client.post("/templates/new/", form(env, **row(0, name="command", type="secret", default="hunter2")))
    assert "a secret has no default" in secret.content.decode()
    bad_json = client.post("/templates/new/", form(env, selector="{all"))
    assert "Not valid JSON" in bad_json.content.decode()
    assert not JobTemplate.objects.exists() and not AuditEvent.objects.filter(action="jobtemplate.create").exists()


def test_the_edit_keeps_parameters_not_touched(client, env):
    admin = person(env, Role.ADMIN)
    template = create_template(act(admin), name="t", environment=env, action="host.command",
                               selector={"all": True},
                               parameters=[{"name": "command", "type": "choice", "choices": ["id", "uptime"],
                                            "required": True}])
    client.force_login(admin)
    client.post(f"/templates/{template.pk}/edit/",
                form(env, name="t", description="now described", **{"param-TOTAL_FORMS": "2",
                                                                    "param-INITIAL_FORMS": "1",
                                                                    "param-1-type": "string"},
                     **row(0, name="command", type="choice", choices="id\nuptime", required="on")))
    template.refresh_from_db()
    assert template.description == "now described"
    assert template.parameters == [{"name": "command", "type": "choice", "choices": ["id", "uptime"],
                                    "required": True}]


def test_viewers_and_operators_are_refused_before_anything_is_written(client, env):
    admin = person(env, Role.ADMIN)
    template = create_template(act(admin), name="t", environment=env, action="host.command",
                               selector={"all": True}, action_params={"command": "id"})
    for role in (Role.VIEWER, Role.OPERATOR):
        client.force_login(person(env, role))
        assert client.get("/templates/new/").status_code == 403
        assert client.post("/templates/new/", form(env, name="other")).status_code == 403
        assert client.post(f"/templates/{template.pk}/edit/", form(env, name="renamed")).status_code == 403
        assert client.post(f"/templates/{template.pk}/delete/").status_code == 403
        listing = client.get("/templates/").content.decode()
        assert f"/templates/{template.pk}/edit/" not in listing
    template.refresh_from_db()
    assert template.name == "t" and JobTemplate.objects.count() == 1
    # Another environment's template is not even there.
    other = person(None, Role.VIEWER)
    other.role_bindings.all().delete()
    client.force_login(other)
    assert client.get(f"/templates/{template.pk}/edit/").status_code == 404


def test_an_admin_edits_a_schedule_and_deletes_it_after_a_confirmation(client, env):
    from ops_portal.jobs.models import JobSchedule
    from ops_portal.jobs.schedules import create_schedule

    admin = person(env, Role.ADMIN)
    template = create_template(act(admin), name="tick", environment=env, action="host.command",
                               selector={"all": True}, action_params={"command": "true"})
    schedule = create_schedule(act(admin), name="nightly", template=template, kind="cron", cron="0 3 * * *",
                               timezone="UTC", missed_policy="skip")
    client.force_login(admin)
    data = {"name": "nightly", "template": template.pk, "kind": "cron", "cron": "0 4 * * 1-5",
            "timezone": "Europe/Berlin", "interval_seconds": "", "run_at": "", "missed_policy": "skip",
            "params": "", "secret_values": ""}
    bad = client.post(f"/schedules/{schedule.pk}/edit/", {**data, "cron": "61 * * * *"})
    assert bad.status_code == 200 and "Not a valid cron expression" in bad.content.decode()
    client.post(f"/schedules/{schedule.pk}/edit/", data)
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone) == ("0 4 * * 1-5", "Europe/Berlin")
    assert "Delete schedule" in client.get(f"/schedules/{schedule.pk}/delete/").content.decode()
    client.force_login(person(env, Role.OPERATOR))
    assert client.post(f"/schedules/{schedule.pk}/edit/", data).status_code == 403
    assert client.post(f"/schedules/{schedule.pk}/delete/").status_code == 403
    client.force_login(admin)
    client.post(f"/schedules/{schedule.pk}/delete/")
    assert not JobSchedule.objects.exists()
