"""Collection as a job through a real Celery worker: the portal's own machine (local transport)
and a host that cannot be reached, in an environment that gates people's work in every way."""
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import FreezeWindow, Job
from ops_portal.monitoring.models import Alert, Sample, Series
from ops_portal.monitoring.tasks import collect_metrics, prune_metrics_jobs
from tests import factories
from tests.helpers import wait_until
from tests.jobs.helpers import wait_job
from tests.monitoring.helpers import rule

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def latest(host, metric, mount=""):
    return (Sample.objects.filter(series__host=host, series__metric=metric, series__mount=mount)
            .order_by("-time").values_list("value", flat=True).first())


def test_a_metrics_job_samples_the_portals_machine_and_records_an_unreachable_host(live_worker):
    env = factories.environment("prod", is_production=True)
    env.allow_adhoc_jobs = False
    env.save()
    ApprovalPolicy.objects.create(name="four-eyes", environment=env, all_work=True)
    FreezeWindow.objects.create(environment=env, starts=timezone.now() - timedelta(minutes=5),
                                ends=timezone.now() + timedelta(hours=1), reason="quarter close")
    portal = factories.host(env, "portal", transport=Transport.LOCAL)
    away = factories.host(env, "away", port=closed_port(), credential=factories.credential(env))
    rule(env, name="down", metric="reachable", comparator="<", threshold=1, severity="critical")

    launched = collect_metrics()
    assert len(launched) == 1
    job = wait_job(Job.objects.get(pk=launched[0]), JobState.FAILED, timeout=90)
    # Neither the ad-hoc switch, nor the approval policy, nor the freeze held the portal's own read-only work.
    assert job.approval_request_id is None and (job.action, job.created_by_name, job.source) == (
        "host.metrics", "", "schedule")
    assert dict(job.targets.values_list("name", "state")) == {"portal": "ok", "away": "failed"}
    assert latest(portal, "reachable") == 1.0 and latest(away, "reachable") == 0.0
    assert 0 <= latest(portal, "cpu_percent") <= 100 and 0 < latest(portal, "mem_percent") < 100
    assert latest(portal, "load1") >= 0 and latest(portal, "disk_percent", "/") is not None
    assert not Series.objects.filter(host=away).exclude(metric="reachable").exists()
    assert list(AuditEvent.objects.filter(object_type="jobs.job", object_id=str(job.pk)).order_by("pk")
                .values_list("action", flat=True)) == ["job.launch", "job.running", "job.failed"]

    # The job's end queued an evaluation of the environment's rules on the worker.
    alert = wait_until(lambda: Alert.objects.filter(host=away, state="firing").first(), timeout=30,
                       what="the reachability alert")
    assert alert.summary.startswith("away: Reachable (1 or 0) is 0")
    assert not Alert.objects.filter(host=portal).exists()

    # The next round is skipped while a metrics job of the environment is still active.
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    assert collect_metrics() == []
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, finished=timezone.now() - timedelta(days=4))
    assert prune_metrics_jobs(days=3) == 1
    assert not Job.objects.filter(pk=job.pk).exists() and Sample.objects.filter(series__host=portal).exists()
