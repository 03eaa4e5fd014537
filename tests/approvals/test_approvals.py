"""Four eyes: policies, quorum, frozen plans, expiry, and no way around an approval."""
from datetime import timedelta

import pytest
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.launch import launch as launch_template
from ops_portal.jobs.launch import launch_adhoc, request_cancel
from ops_portal.jobs.models import Job
from ops_portal.jobs.runner import claim
from ops_portal.jobs.templates import create_template, update_template
from ops_portal.jobs.windows import hold_for_window
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def prod(prod):
    """The shared production environment (tests/conftest.py) with a second local host, web-2."""
    factories.host(prod, "web-2", transport=Transport.LOCAL)
    return prod


@pytest.fixture
def people(prod):
    """people(role, environment=prod) -> a new user with that role there."""

    def make(role, environment=prod):
        return person(environment, role)

    return make


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    """Run on-commit callbacks (signals, queueing) as a real commit would."""

    def run(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return run


def launch(user, env, **kwargs):
    return launch_adhoc(act(user), environment=env, action="host.command", values={"command": "true"},
                             selector={"all": True}, **kwargs)


def test_production_jobs_wait_for_approval(prod, people):
    job = launch(people(Role.OPERATOR), prod)
    assert job.state == JobState.PENDING_APPROVAL
    request = job.approval_request
    assert (request.state, request.required, request.policies) == ("pending", 1, ["production-always"])
    assert request.plan["targets"][0]["name"] == "web-1" and request.plan["plan_hash"] == job.plan_hash
    assert AuditEvent.objects.filter(action="approval.request", object_id=str(request.pk)).exists()


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.APPROVER, Role.ADMIN, "admin-all", "superuser"])
def test_nobody_approves_their_own_request(prod, people, role):
    if role == "superuser":
        requester = factories.superuser()
    elif role == "admin-all":
        requester = people(Role.ADMIN, environment=None)
    else:
        requester = people(role)
        if role == Role.APPROVER:
            factories.binding(role=Role.OPERATOR, user=requester, environment=prod)
    job = launch(requester, prod)
    with pytest.raises(Exception) as refused:
        approvals.decide(act(requester), job.approval_request, "approve")
    assert "own request" in str(refused.value)
    assert ApprovalRequest.objects.get(pk=job.approval_request_id).state == "pending"
    assert not job.approval_request.decisions.exists()


def test_a_quorum_of_two_needs_two_distinct_approvers(prod, people, run_commits):
    ApprovalPolicy.objects.filter(environment=prod).update(approvals_required=2)
    job = launch(people(Role.OPERATOR), prod)
    first, second = people(Role.APPROVER), people(Role.APPROVER)
    run_commits(approvals.decide, act(first), job.approval_request, "approve", "looks fine")
    assert Job.objects.get(pk=job.pk).state == JobState.PENDING_APPROVAL
    with pytest.raises(approvals.Conflict, match="already decided"):
        approvals.decide(act(first), job.approval_request, "approve")
    run_commits(approvals.decide, act(second), job.approval_request, "approve")
    job.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert ApprovalRequest.objects.get(pk=job.approval_request_id).reason == (
        f"approved by {first.username}, {second.username}")


def test_one_rejection_ends_the_request_and_the_job(prod, people, run_commits):
    ApprovalPolicy.objects.filter(environment=prod).update(approvals_required=2)
    job = launch(people(Role.OPERATOR), prod)
    run_commits(approvals.decide, act(people(Role.APPROVER)), job.approval_request, "approve")
    run_commits(approvals.decide, act(people(Role.ADMIN)), job.approval_request, "reject", "not during sales")
    job.refresh_from_db()
    assert job.state == JobState.REJECTED and "rejected by" in job.error
    with pytest.raises(approvals.Conflict):
        approvals.decide(act(people(Role.APPROVER)), job.approval_request, "approve")


def test_a_plan_changed_before_approval_must_be_approved_again(prod, people, run_commits):
    job = launch(people(Role.OPERATOR), prod)
    old = job.approval_request
    web1 = prod.hosts.get(name="web-1")
    web1.address = "127.0.0.2"
    web1.save()
    run_commits(approvals.decide, act(people(Role.APPROVER)), old, "approve")
    job.refresh_from_db()
    assert job.state == JobState.PENDING_APPROVAL
    assert ApprovalRequest.objects.get(pk=old.pk).state == "invalidated"
    assert job.approval_request_id != old.pk
    assert job.approval_request.plan["targets"][0]["fingerprint"]["address"] == "127.0.0.2"


def test_a_plan_changed_after_approval_is_caught_before_it_runs(prod, people, run_commits):
    job = launch(people(Role.OPERATOR), prod)
    run_commits(approvals.decide, act(people(Role.APPROVER)), job.approval_request, "approve")
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    prod.hosts.filter(name="web-2").update(port=2200)  # the inventory changes while it waits
    outcome = run_commits(claim, job.pk, "worker@test")
    job.refresh_from_db()
    assert outcome.job is None
    assert job.state == JobState.PENDING_APPROVAL and job.approval_request.state == "pending"


def test_an_edited_template_invalidates_the_approval(prod, people, run_commits):
    admin = people(Role.ADMIN)
    template = create_template(act(admin), name="deploy", environment=prod, action="host.command",
                                    selector={"all": True}, action_params={"command": "true"})
    job = launch_template(act(people(Role.OPERATOR)), template)
    update_template(act(admin), template, description="edited")
    run_commits(approvals.decide, act(people(Role.APPROVER)), job.approval_request, "approve")
    job.refresh_from_db()
    assert job.state == JobState.PENDING_APPROVAL and job.approval_request.state == "pending"


def test_requests_expire_with_the_policys_outcome(prod, people, run_commits):
    job = launch(people(Role.OPERATOR), prod)
    ApprovalRequest.objects.filter(pk=job.approval_request_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    from ops_portal.approvals.tasks import expire_due

    assert run_commits(expire_due) == 1
    job.refresh_from_db()
    assert job.state == JobState.EXPIRED
    event = AuditEvent.objects.get(action="approval.expired")
    assert event.source == "schedule" and event.after["state"] == "expired"
    with pytest.raises(approvals.Conflict):
        approvals.decide(act(people(Role.APPROVER)), job.approval_request, "approve")


def test_strictest_policy_wins(prod, people):
    ApprovalPolicy.objects.create(name="big", environment=prod, min_targets=1, approvals_required=3,
                                  timeout_minutes=30)
    ApprovalPolicy.objects.create(name="deploys", environment=prod, actions=["host.deploy"], approvals_required=5)
    job = launch(people(Role.OPERATOR), prod)
    request = job.approval_request
    assert (request.required, request.policies) == (3, ["big", "production-always"])
    assert timedelta(minutes=29) < request.expires_at - request.created <= timedelta(minutes=30)


def test_staging_without_policies_runs_without_approval(people):
    staging = factories.environment("staging")
    factories.host(staging, "s-1", transport=Transport.LOCAL)
    job = launch(people(Role.OPERATOR, environment=staging), staging)
    assert job.state == JobState.QUEUED and job.approval_request is None


def test_every_api_path_to_run_a_gated_job_waits_for_approval(prod, people, api, run_commits):
    operator, admin = people(Role.OPERATOR), people(Role.ADMIN)
    api.force_authenticate(admin)
    template = api.post("/api/job-templates/", {"name": "t", "environment": "production", "action": "host.command",
                                                "selector": {"all": True}, "action_params": {"command": "true"}},
                        format="json").json()
    api.force_authenticate(operator)
    adhoc = api.post("/api/jobs/", {"environment": "production", "action": "host.command",
                                    "params": {"command": "true"}, "selector": {"all": True}}, format="json")
    from_template = api.post(f"/api/job-templates/{template['id']}/launch/", {}, format="json")
    emergency_attempt = api.post("/api/jobs/", {"environment": "production", "action": "host.command",
                                                "params": {"command": "true"}, "selector": {"all": True},
                                                "emergency": True, "emergency_reason": "x"}, format="json")
    assert emergency_attempt.status_code == 403  # operators cannot mark emergencies
    api.force_authenticate(admin)
    admin_emergency = api.post("/api/jobs/", {"environment": "production", "action": "host.command",
                                              "params": {"command": "true"}, "selector": {"all": True},
                                              "emergency": True, "emergency_reason": "outage"}, format="json")
    ids = [adhoc.json()["id"], from_template.json()["id"], admin_emergency.json()["id"]]
    # Relaunching a finished job goes through the same gate.
    finished = Job.objects.get(pk=ids[0])
    Job.objects.filter(pk=finished.pk).update(state=JobState.REJECTED)
    api.force_authenticate(operator)
    relaunched = api.post(f"/api/jobs/{finished.pk}/relaunch/", format="json")
    ids.append(relaunched.json()["id"])
    for job in Job.objects.filter(pk__in=ids[1:]):
        assert job.state == JobState.PENDING_APPROVAL, job
        assert run_commits(claim, job.pk, "worker@test").job is None  # a worker will not run it either
        assert Job.objects.get(pk=job.pk).state == JobState.PENDING_APPROVAL
    assert Job.objects.get(pk=ids[0]).state == JobState.REJECTED


def test_approving_outside_your_environment_is_404(prod, people, api):
    job = launch(people(Role.OPERATOR), prod)
    staging = factories.environment("staging")
    api.force_authenticate(people(Role.APPROVER, environment=staging))
    response = api.post(f"/api/approvals/{job.approval_request_id}/approve/", {}, format="json")
    assert response.status_code == 404
    assert ApprovalRequest.objects.get(pk=job.approval_request_id).state == "pending"


def test_viewers_can_see_but_not_approve(prod, people, api):
    job = launch(people(Role.OPERATOR), prod)
    api.force_authenticate(people(Role.VIEWER))
    assert api.get(f"/api/approvals/{job.approval_request_id}/").status_code == 200
    response = api.post(f"/api/approvals/{job.approval_request_id}/approve/", {}, format="json")
    assert response.status_code == 403


def test_deciding_twice_or_on_a_decided_request_is_409(prod, people, api):
    job = launch(people(Role.OPERATOR), prod)
    approver = people(Role.APPROVER)
    api.force_authenticate(approver)
    url = f"/api/approvals/{job.approval_request_id}/"
    first = api.post(url + "approve/", {"comment": "ok"}, format="json")
    assert first.status_code == 200 and first.json()["state"] == "approved"
    assert first.json()["decisions"][0]["comment"] == "ok"
    again = api.post(url + "reject/", {}, format="json")
    assert again.status_code == 409 and "already approved" in again.json()["error"]["message"]


def test_comments_are_audited_and_listed(prod, people, api):
    job = launch(people(Role.OPERATOR), prod)
    api.force_authenticate(people(Role.VIEWER))
    response = api.post(f"/api/approvals/{job.approval_request_id}/comment/", {"text": "Why now?"}, format="json")
    assert response.json()["comments"][0]["text"] == "Why now?"
    assert AuditEvent.objects.get(action="approval.comment").extra == {"comment": "Why now?"}
    assert api.post(f"/api/approvals/{job.approval_request_id}/comment/", {"text": " "},
                    format="json").status_code == 400


def test_a_signed_link_works_once(prod, people):
    job = launch(people(Role.OPERATOR), prod)
    token = approvals.make_link(job.approval_request)
    approver = act(people(Role.APPROVER))
    assert approvals.use_link(approver, token).pk == job.approval_request_id
    with pytest.raises(Exception, match="already used"):
        approvals.use_link(approver, token)
    with pytest.raises(Exception, match="not valid"):
        approvals.use_link(approver, token[:-3] + "abc")


def test_canceling_a_waiting_job_withdraws_its_request(prod, people, run_commits):
    operator = people(Role.OPERATOR)
    job = launch(operator, prod)
    run_commits(request_cancel, act(operator), job)
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELED
    assert ApprovalRequest.objects.get(pk=job.approval_request_id).state == "withdrawn"


def test_approve_now_run_later_in_a_maintenance_window(prod, people, run_commits):
    from ops_portal.jobs.models import MaintenanceWindow

    later = timezone.now() + timedelta(days=1)
    MaintenanceWindow.objects.create(environment=prod, name="tomorrow", weekdays=[later.weekday()],
                                     start_time=later.time().replace(microsecond=0), duration_minutes=60)
    operator = people(Role.OPERATOR)
    job = launch(operator, prod, not_before=hold_for_window(prod))
    run_commits(approvals.decide, act(people(Role.APPROVER)), job.approval_request, "approve")
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    outcome = run_commits(claim, job.pk, "worker@test")
    job.refresh_from_db()
    assert outcome.job is None and outcome.retry_at == job.not_before
    assert job.waiting_reason.startswith("held until")


def test_policy_validation_errors_are_400(api, people, prod):
    api.force_authenticate(people(Role.ADMIN))
    response = api.post("/api/approval-policies/", {"name": "p", "environment": "production",
                                                    "templates": "deploy", "approvals_required": 0}, format="json")
    assert response.status_code == 400
    assert {"templates", "approvals_required"} <= set(response.json()["error"]["fields"])




def test_a_pending_request_names_who_could_still_approve_it(prod, people, api):
    """Approvers here or everywhere, directly, through a team or as superusers; never the requester,
    someone who already decided, an inactive user, or people who may not approve here."""
    ApprovalPolicy.objects.filter(environment=prod).update(approvals_required=2)
    requester = people(Role.ADMIN)
    direct, decided = person(prod, Role.APPROVER, "ann"), person(prod, Role.APPROVER, "dan")
    everywhere = person(None, Role.ADMIN, "eve")
    member = factories.user("tom")
    factories.binding(role=Role.APPROVER, team=factories.team(members=[member]), environment=prod)
    factories.user("sue", is_superuser=True)
    factories.user("ian", is_active=False, is_superuser=True)
    person(prod, Role.OPERATOR, "oscar")
    person(prod, Role.VIEWER, "vic")
    person(factories.environment("staging"), Role.APPROVER, "stan")
    job = launch(requester, prod)
    api.force_authenticate(decided)
    url = f"/api/approvals/{job.approval_request_id}/"
    assert api.post(url + "approve/", {}, format="json").json()["approvers"] == ["ann", "eve", "sue", "tom"]
    api.force_authenticate(people(Role.VIEWER))
    assert api.get(url).json()["approvers"] == ["ann", "eve", "sue", "tom"]
    api.force_authenticate(direct)
    assert api.post(url + "approve/", {}, format="json").json()["approvers"] == []  # approved: nobody left
    assert everywhere.username == "eve"
