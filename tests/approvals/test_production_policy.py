"""`manage.py bootstrap` leaves production gated: one approval for work that changes targets."""
import pytest
from django.core.management import call_command

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import Environment
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.core.choices import Source
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.launch import launch_adhoc
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def bootstrap():
    call_command("bootstrap", "--no-local-host", stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_after_bootstrap_an_operators_command_in_production_waits_for_approval():
    bootstrap()
    production = Environment.objects.get(name="production")
    factories.host(production, "web-1")
    staging = Environment.objects.get(name="staging")
    factories.host(staging, "stage-1")
    operator = person(production, Role.OPERATOR)
    factories.binding(role=Role.OPERATOR, user=operator, environment=staging)
    actor = act(operator)
    job = launch_adhoc(actor, environment=production, action="host.command", values={"command": "id"},
                       selector={"all": True})
    assert job.state == JobState.PENDING_APPROVAL
    assert job.approval_request.required == 1 and job.approval_request.policies == ["production-changes"]
    # Waiting for approval is a transition like any other: audited, in the launcher's name.
    rows = AuditEvent.objects.filter(object_type="jobs.job", object_id=str(job.pk)).order_by("pk")
    assert list(rows.values_list("action", "before", "actor_name")) == [
        ("job.launch", None, operator.username), ("job.pending_approval", {"state": "queued"}, operator.username)]
    # Observation changes nothing and is not held.
    facts = launch_adhoc(actor, environment=production, action="host.facts", selector={"all": True})
    assert facts.state == JobState.QUEUED
    # Staging has no policy.
    assert launch_adhoc(actor, environment=staging, action="host.command", values={"command": "id"},
                        selector={"all": True}).state == JobState.QUEUED


def test_the_policy_is_audited_as_the_system_and_not_recreated_once_deleted():
    bootstrap()
    policy = ApprovalPolicy.objects.get()
    created = AuditEvent.objects.get(action="approvalpolicy.create")
    assert (created.source, created.actor_id, created.environment_name) == (Source.SYSTEM, None, "production")
    bootstrap()
    assert ApprovalPolicy.objects.count() == 1
    admin = person(None, Role.ADMIN)
    approvals.delete_policy(act(admin), policy)
    bootstrap()
    assert not ApprovalPolicy.objects.exists()
