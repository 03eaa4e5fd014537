"""The portal's own periodic work runs as jobs everywhere, without approvals or freezes holding
read-only observation, and never piles up."""
import pytest

from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from ops_portal.jobs.system import launch_everywhere
from tests import factories

pytestmark = pytest.mark.django_db


def test_facts_refresh_reaches_locked_down_production_without_approval():
    prod = factories.environment("production", is_production=True)
    prod.allow_adhoc_jobs = False
    prod.save()
    ApprovalPolicy.objects.create(name="always", environment=prod, all_work=True)
    factories.host(prod, "p-1", transport=Transport.LOCAL)
    factories.environment("empty")  # no hosts: skipped quietly
    launched = launch_everywhere("host.facts", name="Inventory refresh")
    job = Job.objects.get(pk__in=launched)
    assert (job.environment, job.state, job.created_by_id, job.source) == (prod, JobState.QUEUED, None, "schedule")
    assert launch_everywhere("host.facts", name="Inventory refresh") == []  # the first is still active


def test_changes_by_the_system_still_need_approval():
    from ops_portal.core.choices import Source
    from ops_portal.core.context import Actor
    prod = factories.environment("production", is_production=True)
    ApprovalPolicy.objects.create(name="always", environment=prod, all_work=True)
    factories.host(prod, "p-1", transport=Transport.LOCAL)
    job = launch_adhoc(Actor.system(Source.SCHEDULE), environment=prod, action="host.command",
                                values={"command": "true"}, selector={"all": True})
    assert job.state == JobState.PENDING_APPROVAL
