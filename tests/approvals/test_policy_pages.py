"""Approval policy pages: the bootstrap set shown and editable, create, edit, delete, refusals."""
import pytest
from django.core.management import call_command

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import Environment
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from tests.helpers import person

pytestmark = pytest.mark.django_db


def policy_form(environment, **overrides):
    data = {"name": "big-changes", "environment": environment.pk, "enabled": "on", "templates": "", "actions": "",
            "risks": "mutating", "min_targets": "10", "approvals_required": "2", "timeout_minutes": "60",
            "timeout_outcome": "reject", "schedule_mode": "per_run"}
    data.update(overrides)
    return data


def test_bootstrap_gates_production_only_and_the_policy_is_shown_and_editable(client):
    call_command("bootstrap", "--no-local-host", stdout=open("/dev/null", "w"))  # noqa: SIM115
    production = Environment.objects.get(name="production")
    policy = ApprovalPolicy.objects.get()
    assert (policy.environment, policy.risks, policy.approvals_required, policy.all_work) == (
        production, ["mutating"], 1, False)
    assert not ApprovalPolicy.objects.exclude(environment=production).exists()  # staging, development: none
    admin = person(None, Role.ADMIN)
    client.force_login(admin)
    page = client.get("/approvals/policies/").content.decode()
    assert "production-changes" in page and "risks mutating" in page and "1 approval" in page
    assert "<strong>staging</strong>" in page and "<strong>development</strong>" in page  # said to run at once
    edit = client.get(f"/approvals/policies/{policy.pk}/edit/").content.decode()
    assert 'value="mutating"' in edit and 'value="production-changes"' in edit
    client.post(f"/approvals/policies/{policy.pk}/edit/",
                policy_form(production, name="production-changes", min_targets="", approvals_required="2",
                            schedule_mode="standing", timeout_minutes="1440"))
    policy.refresh_from_db()
    assert policy.approvals_required == 2 and policy.risks == ["mutating"] and policy.min_targets is None
    event = AuditEvent.objects.filter(action="approvalpolicy.update").get()
    assert (event.before["approvals_required"], event.after["approvals_required"], event.source) == (1, 2, "web")


def test_an_admin_creates_and_deletes_a_policy_and_a_bad_field_stays_in_the_form(client, env):
    client.force_login(person(env, Role.ADMIN))
    bad = client.post("/approvals/policies/new/", policy_form(env, approvals_required="11", name="bad name!"))
    assert bad.status_code == 200
    body = bad.content.decode()
    assert "Ensure this value is less than or equal to 10." in body and not ApprovalPolicy.objects.exists()
    client.post("/approvals/policies/new/", policy_form(env, actions="host.command, host.script"))
    policy = ApprovalPolicy.objects.get()
    assert policy.actions == ["host.command", "host.script"] and policy.min_targets == 10
    confirm = client.get(f"/approvals/policies/{policy.pk}/delete/").content.decode()
    assert "Delete approval policy" in confirm and "big-changes" in confirm
    client.post(f"/approvals/policies/{policy.pk}/delete/")
    assert not ApprovalPolicy.objects.exists()
    assert list(AuditEvent.objects.order_by("pk").filter(action__startswith="approvalpolicy.")
                .values_list("action", flat=True)) == ["approvalpolicy.create", "approvalpolicy.delete"]


def test_approvers_and_viewers_may_not_change_policies(client, env):
    policy = ApprovalPolicy.objects.create(name="p", environment=env, risks=["mutating"])
    other = Environment.objects.create(name="other")
    for role in (Role.VIEWER, Role.APPROVER):
        client.force_login(person(env, role))
        assert client.get("/approvals/policies/").status_code == 200
        assert client.get("/approvals/policies/new/").status_code == 403
        assert client.post(f"/approvals/policies/{policy.pk}/edit/", policy_form(env, name="p")).status_code == 403
        assert client.post(f"/approvals/policies/{policy.pk}/delete/").status_code == 403
    # An administrator of another environment may not move a policy into it, nor see this one.
    client.force_login(person(other, Role.ADMIN))
    assert client.get(f"/approvals/policies/{policy.pk}/edit/").status_code == 404
    response = client.post("/approvals/policies/new/", policy_form(env))
    assert "Select a valid choice" in response.content.decode()
    assert ApprovalPolicy.objects.get() == policy and policy.approvals_required == 1
