"""The dry run before approval: an ansible.playbook (or puppet.apply) job that waits for approval
gets, in the same transaction, a dry run of the same plan (check mode / --noop, same revision,
parameters and targets) that needs no approval; the request's page shows its per-host diffs and
a decision's audit row notes which dry run, in which state, the approver had in front of them.
(The fleet test in test_playbook_fleet.py runs it for real.)"""
import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs import launch as launching
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.dry_runs import launch_for
from ops_portal.jobs.launch import launch, launch_adhoc
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template
from ops_portal.projects.models import Project
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db

REVISION = "a" * 40
DIFF = "--- before: /srv/app.conf\n+++ after: /srv/app.conf\n@@ -1 +1 @@\n-port=80\n+port=<9090>\n"


@pytest.fixture
def world(monkeypatch):
    queued = []
    monkeypatch.setattr(launching, "enqueue", queued.append)
    env = factories.environment("prod")
    for name in ("web-1", "web-2"):
        factories.host(env, name)
    Project.objects.create(environment=env, name="site", url="https://git.example.test/site.git", branch="main",
                           revision=REVISION, state="synced")
    ApprovalPolicy.objects.create(name="production", environment=env, all_work=True)
    return env, act(person(env, Role.OPERATOR)), act(person(env, Role.APPROVER)), queued


def play(world, **values):
    env, operator, _, _ = world
    return launch_adhoc(operator, environment=env, action="ansible.playbook",
                        values={"project": "site", "playbook": "site.yml", **values}, selector={"all": True},
                        strategy={"kind": "rolling", "batch_size": 1})


def test_a_job_waiting_for_approval_gets_a_dry_run_of_the_same_plan_that_runs_at_once(world):
    env, operator, _, queued = world
    job = play(world, tags="web")
    assert job.state == JobState.PENDING_APPROVAL
    request = job.approval_request
    dry = Job.objects.get(dry_run_for=request)
    assert dry.state == JobState.QUEUED and queued == [dry]  # no approval for the read-only run
    assert dry.approval_request is None and dry.created_by_id == operator.user_id
    assert dry.params == {**job.params, "dry_run": True}  # same revision, playbook, tags
    assert dry.params["revision"] == REVISION
    assert list(dry.targets.values_list("name", "fingerprint")) == list(job.targets.values_list("name",
                                                                                                "fingerprint"))
    assert dry.strategy == {}  # all at once: the rollout is for changing things
    launched = AuditEvent.objects.get(action="job.launch", object_id=str(dry.pk))
    assert launched.after["dry_run_for"] == {"approval": request.pk, "job": job.pk}


def test_no_dry_run_of_a_dry_run_nor_of_actions_without_one(world):
    env, operator, _, _ = world
    dry_job = play(world, dry_run=True)
    assert dry_job.state == JobState.PENDING_APPROVAL  # all work needs approval in prod, even a dry run launched
    assert not Job.objects.filter(dry_run_for__isnull=False).exists()
    command = launch_adhoc(operator, environment=env, action="host.command", values={"command": "uptime"},
                           selector={"all": True})
    assert command.state == JobState.PENDING_APPROVAL and not command.approval_request.dry_runs.exists()


def test_secret_template_values_reach_the_dry_run_encrypted(world):
    env, operator, _, _ = world
    admin = act(person(env, Role.ADMIN))
    template = create_template(admin, name="deploy", environment=env, action="ansible.playbook",
                               selector={"all": True}, action_params={"project": "site", "playbook": "site.yml"},
                               parameters=[{"name": "token", "type": "secret"}])
    job = launch(operator, template, {"token": "s3cr3t-value"})
    dry = job.approval_request.dry_runs.get()
    assert "s3cr3t-value" not in str(dry.params) and "s3cr3t-value" in dry.secret_params
    assert dry.template_id == template.pk


def _finish(dry, diff_by_host):
    for target in dry.targets.all():
        diff = diff_by_host.get(target.name)
        target.state, target.changed = TargetState.OK, False
        target.data = {"counts": {"ok": 1, "changed": 1 if diff else 0, "failed": 0}, "check": True,
                       "revision": REVISION, **({"diff": [{"task": "conf", "diff": diff}]} if diff else {})}
        target.finished = dry.created
        target.save()
    Job.objects.filter(pk=dry.pk).update(state=JobState.SUCCEEDED)


def test_the_approval_page_shows_the_dry_runs_diff_and_the_decision_notes_it(world, django_capture_on_commit_callbacks):
    env, operator, approver, _ = world
    job = play(world)
    request = job.approval_request
    dry = request.dry_runs.get()
    client = Client()
    client.force_login(approver.user)
    page = client.get(reverse("approvals:detail", args=[request.pk])).content.decode()
    assert f'href="/jobs/{dry.pk}/"' in page and 'data-state="queued"' in page
    assert "The dry run has not finished" in page
    assert f'hx-get="/approvals/{request.pk}/dry-run/"' in page  # polled until it ends

    _finish(dry, {"web-1": DIFF})
    fragment = client.get(reverse("jobs:dry_run_panel", args=[request.pk])).content.decode()
    page = client.get(reverse("approvals:detail", args=[request.pk])).content.decode()
    for html in (fragment, page):
        assert "<strong>1</strong> of 2 hosts would change" in html
        assert "hx-get" not in html.split('id="dry-run"')[1][:60]  # finished: no more polling
        assert '<span class="d-del"><span class="d-mark" aria-hidden="true">-</span>port=80</span>' in html
        assert '<span class="d-add"><span class="d-mark" aria-hidden="true">+</span>port=&lt;9090&gt;</span>' in html
        assert "No difference on this host" in html  # web-2
    job_page = client.get(reverse("jobs:detail", args=[job.pk])).content.decode()
    assert f"its dry run, job #{dry.pk}" in job_page
    dry_page = client.get(reverse("jobs:detail", args=[dry.pk])).content.decode()
    assert f"approval #{request.pk}</a> of <a href=\"/jobs/{job.pk}/\">job #{job.pk}" in dry_page

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approver, request, "approve", "looks right")
    row = AuditEvent.objects.get(action="approval.approve", object_id=str(request.pk))
    assert row.extra == {"comment": "looks right", "dry_run": {"job": dry.pk, "state": "succeeded", "finished": True}}
    job.refresh_from_db()
    assert job.state == JobState.QUEUED and job.params.get("dry_run") is False


def test_an_approver_who_decides_before_the_dry_run_ends_is_recorded_so(world):
    _, _, approver, _ = world
    request = play(world).approval_request
    approvals.decide(approver, request, "reject")
    row = AuditEvent.objects.filter(action="approval.reject", object_id=str(request.pk)).order_by("pk").first()
    assert row.extra["dry_run"] == {"job": request.dry_runs.get().pk, "state": "queued", "finished": False}


def test_the_panel_is_for_people_who_may_view_the_environment(world, client):
    request = play(world).approval_request
    outsider = person(factories.environment("other"), Role.ADMIN)
    client.force_login(outsider)
    assert client.get(reverse("jobs:dry_run_panel", args=[request.pk])).status_code == 404


def test_a_plan_that_cannot_be_dry_run_still_asks_for_approval_and_says_why(world):
    env, operator, _, _ = world
    job = play(world)
    Project.objects.all().delete()  # the project is gone: a new request's dry run cannot freeze
    Job.objects.filter(dry_run_for__isnull=False).delete()
    with transaction.atomic():
        assert launch_for(operator, job.approval_request, job) is None
    row = AuditEvent.objects.get(action="job.dry_run_refused")
    assert row.object_id == str(job.pk) and "no project site" in row.extra["reason"]


def test_the_api_names_the_dry_run_of_a_request(world, api):
    _, _, approver, _ = world
    request = play(world).approval_request
    dry = request.dry_runs.get()
    api.force_authenticate(approver.user)
    body = api.get(f"/api/approvals/{request.pk}/").json()
    assert body["evidence"] == {"dry_run": {"job": dry.pk, "state": "queued", "finished": False}}
    assert api.get(f"/api/jobs/{dry.pk}/").json()["params"]["dry_run"] is True


def test_a_plan_that_changed_asks_again_with_a_dry_run_of_the_new_plan(world, django_capture_on_commit_callbacks):
    env, _, approver, _ = world
    job = play(world)
    old = job.approval_request
    web1 = env.hosts.get(name="web-1")
    web1.address = "127.0.0.2"
    web1.save()
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approver, old, "approve")
    job.refresh_from_db()
    assert job.state == JobState.PENDING_APPROVAL and job.approval_request_id != old.pk
    fresh = job.approval_request.dry_runs.get()
    assert fresh.pk != old.dry_runs.get().pk
    assert fresh.targets.get(name="web-1").fingerprint["address"] == "127.0.0.2"


def test_a_puppet_apply_waiting_for_approval_gets_a_noop_run(world):
    env, operator, _, _ = world
    for host in env.hosts.all():
        host.facts = {"tools": {"puppet": {"version": "7.23.0", "path": "/usr/bin/puppet", "agent_server": ""}}}
        host.save(update_fields=["facts"])
    job = launch_adhoc(operator, environment=env, action="puppet.apply",
                       values={"project": "site", "manifest": "manifests/site.pp"}, selector={"all": True})
    assert job.state == JobState.PENDING_APPROVAL
    dry = job.approval_request.dry_runs.get()
    assert dry.state == JobState.QUEUED and dry.params == {**job.params, "noop": True}
    assert dry.params["revision"] == REVISION
