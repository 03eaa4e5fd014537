"""The approval request page: an approver decides there, and a refused decision is a message."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalRequest
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def test_an_approver_decides_on_the_request_page_and_the_job_page_shows_it(client, prod,
                                                                           django_capture_on_commit_callbacks):
    operator = person(prod, Role.OPERATOR)
    job = launch_adhoc(act(operator, source="web"), environment=prod, action="host.command",
                            values={"command": "true"}, selector={"all": True})
    client.force_login(operator)
    own = client.get(f"/approvals/{job.approval_request_id}/").content.decode()
    assert "someone else must decide" in own and 'value="approve"' not in own
    approver = person(prod, Role.APPROVER)
    client.force_login(approver)
    inbox = client.get("/approvals/").content.decode()
    assert f"Job #{job.pk}" in inbox
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/approvals/{job.approval_request_id}/",
                               {"decision": "approve", "comment": "ship it"}, follow=True)
    assert "Approved." in response.content.decode()
    assert Job.objects.get(pk=job.pk).state == "queued"
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "approved by" in page and "ship it" in page


def test_a_refused_decision_is_a_message_not_an_error(client, prod):
    operator = person(prod, Role.OPERATOR)
    job = launch_adhoc(act(operator, source="web"), environment=prod, action="host.command",
                            values={"command": "true"}, selector={"all": True})
    client.force_login(operator)
    response = client.post(f"/approvals/{job.approval_request_id}/", {"decision": "approve"}, follow=True)
    assert "Nobody approves their own request" in response.content.decode()
    assert ApprovalRequest.objects.get(pk=job.approval_request_id).state == "pending"
