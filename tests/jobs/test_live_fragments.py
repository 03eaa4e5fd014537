"""The parts of pages that are fetched again when a stream speaks: the job's live part, the
approvals inbox's waiting list and the navigation counts; what a job's counts and wait say."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.core import heartbeat
from ops_portal.jobs import live
from ops_portal.jobs.choices import JobState, WaitingKind
from ops_portal.jobs.models import Job, JobTarget
from tests import factories
from tests.helpers import act, person
from tests.jobs.helpers import launch

pytestmark = pytest.mark.django_db


def _job(env, states, **fields):
    job = Job.objects.create(name="j", environment=env, action="host.command", targets_total=len(states), **fields)
    for i, state in enumerate(states):
        JobTarget.objects.create(job=job, index=i, kind="host", ref_id=i + 1, name=f"h-{i}", state=state)
    return job


def test_canceled_skipped_and_lost_targets_are_counted_apart_from_done_work(env):
    job = _job(env, ["ok", "failed", "timed_out", "canceled", "canceled", "skipped", "lost", "pending"],
               state=JobState.CANCELED)
    counts = live.target_counts(job)
    assert counts["text"] == "1 ok, 2 failed, 2 canceled, 1 skipped, 1 lost, 1 pending of 8 targets"
    assert [(p["key"], p["percent"]) for p in counts["parts"]][:3] == [("ok", 12.5), ("failed", 25.0),
                                                                       ("canceled", 25.0)]
    assert live.target_counts(_job(env, ["canceled"]))["text"] == "0 ok, 0 failed, 1 canceled of 1 target"


def test_a_queued_job_says_no_worker_takes_its_queue(env):
    heartbeat.beat_once("worker", "w1@test", queues=["default"])
    elsewhere = _job(env, [], state=JobState.QUEUED, queue="reports")
    assert live.why_waiting(elsewhere) == ("No worker is alive on queue reports: it runs as soon as one takes "
                                           "that queue.")
    assert live.why_waiting(_job(env, [], state=JobState.QUEUED)) == ""  # w1 takes it, just queued
    heartbeat.beat_once("worker", "w2@test", queues=["default", "reports"])
    assert live.why_waiting(elsewhere) == ""
    assert heartbeat.takers("reports") == ["w2@test"]


def test_a_queued_job_with_a_known_wait_and_a_job_awaiting_approval_say_why(prod):
    leased = _job(prod, [], state=JobState.QUEUED, waiting_kind=WaitingKind.LEASE,
                  waiting_reason="waiting for lease on web-1 (held by job #3)")
    assert live.why_waiting(leased) == "Waiting for lease on web-1 (held by job #3)"
    job = launch(act(person(prod, Role.OPERATOR)), prod, "true")
    assert job.state == JobState.PENDING_APPROVAL
    assert live.why_waiting(job, [job.approval_request]) == (
        f"Waiting for approval: 0 of 1 (request #{job.approval_request_id}).")


def test_the_jobs_live_part_follows_its_approval_and_is_private_to_its_environment(
        client, prod, django_capture_on_commit_callbacks):
    operator = person(prod, Role.OPERATOR)
    job = launch(act(operator), prod, "true")
    client.force_login(operator)
    body = client.get(f"/jobs/{job.pk}/live/").content.decode()
    assert 'id="job-live"' in body and 'id="job-approvals" hx-swap-oob="true"' in body
    assert "0 of 1 approvals" in body and "Cancel" in body and "Launch again" not in body
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(act(person(prod, Role.APPROVER)), job.approval_request, "approve")
    body = client.get(f"/jobs/{job.pk}/live/").content.decode()
    assert "1 of 1 approvals" in body and 'data-state="approved"' in body
    assert 'id="job-live" data-state="queued"' in body and "Waiting for approval" not in body
    client.force_login(person(factories.environment("beta"), Role.ADMIN))
    assert client.get(f"/jobs/{job.pk}/live/").status_code == 404


def test_the_inbox_waiting_part_and_the_navigation_counts(client, prod):
    operator, approver = person(prod, Role.OPERATOR), person(prod, Role.APPROVER)
    client.force_login(approver)
    assert "Nothing waits for you" in client.get("/approvals/waiting/").content.decode()
    assert '<b>0</b> to approve' in client.get("/nav/counts/").content.decode()
    job = launch(act(operator), prod, "true")
    body = client.get("/approvals/waiting/").content.decode()
    assert f'data-approval="{job.approval_request_id}"' in body and "Nothing waits" not in body
    assert '<b>1</b> to approve' in client.get("/nav/counts/").content.decode()
    client.force_login(operator)  # one's own request waits for someone else
    assert "Nothing waits for you" in client.get("/approvals/waiting/").content.decode()
    assert '<b>0</b> to approve' in client.get("/nav/counts/").content.decode()
    client.logout()
    assert client.get("/nav/counts/").status_code == 302
