"""A schedule's standing approval covers its targets as approved: hosts that join later, or a
host whose address, user, credential or key changes, make the run ask for approval again, at the
firing and again when a worker claims the job."""
from datetime import timedelta

import pytest
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory import services as inventory
from ops_portal.inventory.models import Host
from ops_portal.jobs import schedules
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import JobSchedule
from ops_portal.jobs.runner import claim
from ops_portal.jobs.templates import create_template, update_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def gated(django_capture_on_commit_callbacks):
    """A schedule of a gated template on the hosts of group `web` (one host), approved standing."""
    env = factories.environment("production", is_production=True)
    web = factories.host_group(env, "web")
    factories.host(env, "web-1").groups.add(web)
    admin = person(env, Role.ADMIN)
    approver = person(env, Role.APPROVER)
    ApprovalPolicy.objects.create(name="gate", environment=env, templates=["restart"])
    template = create_template(act(admin), name="restart", environment=env, action="host.command",
                                        selector={"groups": ["web"]}, action_params={"command": "true"})
    schedule = schedules.create_schedule(act(admin), name="nightly", template=template, kind="cron",
                                         cron="*/5 * * * *")
    standing = schedule.standing_request
    assert [t["name"] for t in standing.plan["targets"]] == ["web-1"]
    approvals.decide(act(approver), standing, "approve")
    return env, web, admin, approver, schedule


def test_a_covered_run_launches_on_the_approved_targets(gated):
    env, web, admin, approver, schedule = gated
    run = schedules.fire(schedule.pk)
    assert run.outcome == "launched" and run.job.state == JobState.QUEUED
    assert run.job.approval_request_id == schedule.standing_request_id
    assert list(run.job.targets.values_list("name", flat=True)) == ["web-1"]


def test_hosts_that_joined_the_group_make_the_run_wait_for_its_own_approval(gated, django_capture_on_commit_callbacks):
    env, web, admin, approver, schedule = gated
    standing = schedule.standing_request
    for name in ("web-2", "web-3"):
        factories.host(env, name).groups.add(web)
    now = timezone.now()
    run = schedules.fire(schedule.pk, now)
    job = run.job
    assert run.outcome == "launched" and job.state == JobState.PENDING_APPROVAL, run.detail
    assert job.targets_total == 3 and job.approval_request_id != standing.pk
    assert job.approval_request.subject_type == "job" and job.approval_request.state == "pending"
    assert [t["name"] for t in job.approval_request.plan["targets"]] == ["web-1", "web-2", "web-3"]
    standing.refresh_from_db()
    schedule.refresh_from_db()
    assert standing.state == "invalidated"
    assert schedule.standing_request.state == "pending" and schedule.standing_request.plan["target_count"] == 3
    changed = AuditEvent.objects.get(action="jobschedule.plan_changed")
    assert [t["name"] for t in changed.after["targets"]] == ["web-1", "web-2", "web-3"]
    # Until the schedule is approved again for three hosts, later firings do not run.
    assert schedules.fire(schedule.pk, now + timedelta(minutes=5)).outcome == "needs_approval"
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(act(approver), job.approval_request, "approve")
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


@pytest.mark.parametrize("change", [{"address": "10.9.9.9"}, {"port": 2222}, {"username": "deploy"},
                                    {"credential": "new"},
                                    {"host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKey"}])
def test_a_host_that_changed_under_the_standing_approval_is_not_run_silently(gated, change):
    env, web, admin, approver, schedule = gated
    host = Host.objects.get(name="web-1")
    if "credential" in change:
        change = {"credential": factories.credential(env, "other-key")}
    if "host_key" in change:
        Host.objects.filter(pk=host.pk).update(**change)  # pinned by a job on first contact
    else:
        inventory.update_host(act(admin), host, **change)
    run = schedules.fire(schedule.pk)
    assert run.outcome == "launched" and run.job.state == JobState.PENDING_APPROVAL, run.detail
    assert run.job.approval_request.subject_type == "job"


def test_a_host_that_changed_after_the_firing_is_caught_when_the_worker_claims_the_job(gated):
    env, web, admin, approver, schedule = gated
    run = schedules.fire(schedule.pk)
    assert run.job.state == JobState.QUEUED
    inventory.update_host(act(admin), Host.objects.get(name="web-1"), address="10.9.9.9")
    assert claim(run.job.pk, "w1").job is None  # not started
    job = run.job
    job.refresh_from_db()
    assert job.state == JobState.PENDING_APPROVAL and job.approval_request.subject_type == "job"
    assert job.targets.get().fingerprint["address"] == "10.9.9.9"
    assert job.approval_request.plan["targets"][0]["fingerprint"]["address"] == "10.9.9.9"
    assert AuditEvent.objects.filter(action="job.plan_changed", object_id=str(job.pk)).exists()
    assert JobSchedule.objects.get(pk=schedule.pk).standing_request.state == "approved"  # the next firing decides


def test_a_pending_standing_approval_is_refreshed_when_its_targets_change(gated):
    env, web, admin, approver, schedule = gated
    update_template(act(admin), schedule.template, description="edited")  # asks again
    schedule.refresh_from_db()
    pending = schedule.standing_request
    factories.host(env, "web-2").groups.add(web)
    run = schedules.fire(schedule.pk)
    assert run.outcome == "needs_approval" and run.job is None
    schedule.refresh_from_db()
    pending.refresh_from_db()
    assert pending.state == "invalidated" and schedule.standing_request.plan["target_count"] == 2
