"""Alert rule pages: create, edit, delete through the rule services; refusals in the form."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.templates import create_template
from ops_portal.monitoring.models import AlertRule
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def rule_form(env, **overrides):
    data = {"name": "disk-full", "environment": env.pk, "enabled": "on", "metric": "disk_percent",
            "comparator": ">", "threshold": "90", "clear_threshold": "85", "for_seconds": "120",
            "severity": "critical", "group": "", "tag": "", "mount": "/", "runbook": "", "description": ""}
    data.update(overrides)
    return data


def test_an_admin_creates_edits_and_deletes_a_rule(client, env):
    admin = person(env, Role.ADMIN)
    group = factories.host_group(env, "web")
    runbook = create_template(act(admin), name="clean-tmp", environment=env, action="host.command",
                              selector={"all": True}, action_params={"command": "true"})
    client.force_login(admin)
    client.post("/monitoring/rules/new/", rule_form(env, group=group.pk, runbook=runbook.pk))
    rule = AlertRule.objects.get()
    assert (rule.threshold, rule.clear_threshold, rule.group, rule.runbook, rule.mount) == (90, 85, group, runbook,
                                                                                          "/")
    home = client.get("/monitoring/").content.decode()
    assert f"/monitoring/rules/{rule.pk}/edit/" in home
    assert 'value="90.0"' in client.get(f"/monitoring/rules/{rule.pk}/edit/").content.decode()
    client.post(f"/monitoring/rules/{rule.pk}/edit/", rule_form(env, threshold="95", group=group.pk))
    rule.refresh_from_db()
    assert rule.threshold == 95 and rule.runbook is None
    assert "Delete alert rule" in client.get(f"/monitoring/rules/{rule.pk}/delete/").content.decode()
    client.post(f"/monitoring/rules/{rule.pk}/delete/")
    assert not AlertRule.objects.exists()
    assert list(AuditEvent.objects.filter(action__startswith="alertrule.").order_by("pk")
                .values_list("action", flat=True)) == ["alertrule.create", "alertrule.update", "alertrule.delete"]


def test_a_refused_field_shows_in_the_form(client, env):
    client.force_login(person(env, Role.ADMIN))
    response = client.post("/monitoring/rules/new/", rule_form(env, clear_threshold="99"))
    assert response.status_code == 200
    assert "the clear threshold is at most the threshold" in response.content.decode()
    response = client.post("/monitoring/rules/new/", rule_form(env, metric="cpu_percent"))
    assert "Only disk rules filter by mount." in response.content.decode()
    assert not AlertRule.objects.exists()


def test_operators_may_not_manage_rules(client, env):
    rule = AlertRule.objects.create(name="r", environment=env, metric="cpu_percent", threshold=90)
    client.force_login(person(env, Role.OPERATOR))
    assert client.get("/monitoring/rules/new/").status_code == 403
    assert client.post(f"/monitoring/rules/{rule.pk}/edit/", rule_form(env, mount="")).status_code == 403
    assert client.post(f"/monitoring/rules/{rule.pk}/delete/").status_code == 403
    assert f"/monitoring/rules/{rule.pk}/edit/" not in client.get("/monitoring/").content.decode()
    assert AlertRule.objects.get().threshold == 90


def test_a_state_rule_made_on_the_page_keeps_only_the_fields_of_its_kind(client, env):
    admin = person(env, Role.ADMIN)
    group = factories.host_group(env, "web")
    client.force_login(admin)
    page = client.get("/monitoring/rules/new/").content.decode()
    assert 'id="id_kind"' in page and "js/rule_form.js" in page and 'id="id_name_filter"' in page
    # The metric fields were filled before the kind changed (hidden by the script): they are dropped.
    client.post("/monitoring/rules/new/", rule_form(env, name="web-down", kind="container_not_running",
                                                    name_filter="web-*", group=group.pk, tag="blue"))
    rule = AlertRule.objects.get()
    assert (rule.kind, rule.name_filter, rule.metric, rule.threshold, rule.clear_threshold, rule.mount, rule.group,
            rule.tag) == ("container_not_running", "web-*", "", None, None, "", None, "")
    listed = client.get("/monitoring/").content.decode()
    assert "container not running named web-* for 120s" in listed and "when fine again" in listed
    client.post(f"/monitoring/rules/{rule.pk}/edit/", rule_form(env, name="web-down", kind="program_not_running",
                                                                name_filter="web-*", group=group.pk))
    rule.refresh_from_db()
    assert (rule.kind, rule.group) == ("program_not_running", group)
