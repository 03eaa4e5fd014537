"""Finished jobs and approval requests reach webhooks, signed, through a real worker."""
import json

import pytest

from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.jobs.choices import JobState
from ops_portal.notifications.models import Delivery
from tests import factories
from tests.helpers import operator, wait_until
from tests.jobs.helpers import launch, local_hosts, wait_job
from tests.notifications.helpers import SECRET, Receiver, channel, receiver_verifies

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_a_failed_job_and_an_approval_request_are_announced(live_worker, receiver):
    env = factories.environment("alpha")
    local_hosts(env, 1)
    channel(env, url=receiver.url(), events=["job.failed", "job.succeeded", "approval.requested"])
    actor = operator(env)
    job = wait_job(launch(actor, env, "exit 3"), JobState.FAILED)
    receiver.wait_for(1)
    first = receiver.requests[0]
    assert receiver_verifies(SECRET, first["headers"], first["body"])
    body = json.loads(first["body"])
    assert body["event"] == "job.failed" and body["payload"]["id"] == job.pk
    assert body["payload"]["url"].endswith(f"/jobs/{job.pk}/")
    ApprovalPolicy.objects.create(name="gate", environment=env, all_work=True)
    gated = launch(actor, env, "true")
    assert gated.state == JobState.PENDING_APPROVAL
    receiver.wait_for(2)
    second = json.loads(receiver.requests[1]["body"])
    assert second["event"] == "approval.requested" and "/approvals/link/" in second["payload"]["link"]
    assert wait_until(lambda: Delivery.objects.filter(status="delivered").count() == 2, what="deliveries recorded")
