"""Evaluations against the database with a metric chosen by the test: the decision becomes a
service.scale job with its reason (audited), approval above the policy's limit, cooldowns read from
the history, and never two decisions for one evaluation key."""
import threading

import pytest
from django.db import connection

from ops_portal.approvals.models import ApprovalRequest
from ops_portal.audit.models import AuditEvent
from ops_portal.autoscaling import evaluation
from ops_portal.autoscaling.choices import Outcome
from ops_portal.autoscaling.models import Evaluation
from ops_portal.core import periodic
from ops_portal.jobs import launch
from ops_portal.jobs.models import Job
from tests.autoscaling.helpers import FakeMetric, policy
from tests.containers.helpers import engine, service

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(env):
    local = engine(env, url="unix:///run/as-eval.sock", swarm_role="manager", state="ok")
    return {"engine": local, "service": service(local, "shop_web", replicas_desired=2, replicas_running=2)}


def test_a_scale_decision_launches_a_scale_job_with_its_reason_and_an_audit_row(world, monkeypatch):
    FakeMetric(monkeypatch, value=100.0)
    p = policy(world["engine"], "shop_web")
    done = evaluation.evaluate(p, "slot:1")
    assert done.outcome == Outcome.SCALE_UP and (done.current_replicas, done.desired_replicas) == (2, 4)
    assert done.value == 100.0 and done.samples == {"t1 (slot 1)": 100.0}
    job = Job.objects.get(pk=done.job_id)
    assert job.action == "service.scale" and job.params["replicas"] == 4 and job.state == "queued"
    assert "CPU 100.0%" in job.params["reason"] and "2 × 100 ÷ target 50" in job.params["reason"]
    assert job.name == "Autoscale shop_web 2 → 4" and job.created_by_name == "" and job.source == "schedule"
    assert list(job.targets.values_list("kind", "ref_id")) == [("service", world["service"].pk)]
    row = AuditEvent.objects.get(action="scalingpolicy.scale")
    assert row.extra["to"] == 4 and row.extra["job"] == job.pk and row.extra["value"] == 100.0
    assert AuditEvent.objects.filter(action="job.launch", object_id=str(job.pk)).exists()


def test_one_key_is_one_decision_however_often_it_is_asked(world, monkeypatch):
    metric = FakeMetric(monkeypatch, value=100.0)
    p = policy(world["engine"], "shop_web")
    first = evaluation.evaluate(p, "slot:7")
    assert evaluation.evaluate(p, "slot:7") is None  # a second beat tick of the same slot
    assert evaluation.run(first.pk) is None  # a redelivered task: started already
    assert metric.calls == 1 and Evaluation.objects.count() == 1 and Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_slot_launch_one_job(env, monkeypatch):
    local = engine(env, url="unix:///run/as-race.sock", swarm_role="manager", state="ok")
    service(local, "shop_web", replicas_desired=1)
    FakeMetric(monkeypatch, value=100.0)
    # The launched job stays in the database: a live worker of another test must not take it and
    # hold its rows while this test's tables are emptied.
    monkeypatch.setattr(launch, "enqueue", lambda job, **options: None)
    p = policy(local, "shop_web")
    barrier, results = threading.Barrier(4), []

    def worker():
        try:
            barrier.wait()
            results.append(evaluation.evaluate(p, "slot:42"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([r for r in results if r is not None]) == 1
    assert Evaluation.objects.count() == 1 and Job.objects.filter(action="service.scale").count() == 1


def test_the_beat_tick_claims_each_policy_once_per_slot(world, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(evaluation, "send", sent.append)
    other = service(world["engine"], "shop_api")
    p1, p2 = policy(world["engine"], "shop_web", interval=30), policy(world["engine"], "shop_api", interval=60)
    policy(world["engine"], "shop_db", enabled=False)
    assert other.pk
    with django_capture_on_commit_callbacks(execute=True):
        first = evaluation.tick(now=960.0)
    assert len(first) == 2 and sorted(sent) == sorted(first)
    assert evaluation.tick(now=975.0) == []  # same slots
    assert len(evaluation.tick(now=995.0)) == 1  # p1's next 30 s slot; p2's 60 s slot unchanged
    assert set(Evaluation.objects.values_list("policy_id", flat=True)) == {p1.pk, p2.pk}
    assert "autoscaling: evaluate" in periodic.builtins()
    assert periodic.builtins()["autoscaling: evaluate"].task == "autoscaling.tick"


def test_cooldown_reads_the_last_scaling_from_the_history(world, monkeypatch):
    metric = FakeMetric(monkeypatch, value=100.0)
    p = policy(world["engine"], "shop_web", up_cooldown=600)
    assert evaluation.evaluate(p, "slot:1").outcome == Outcome.SCALE_UP
    Job.objects.update(state="succeeded")
    metric.replicas = 4
    held = evaluation.evaluate(p, "slot:2")
    assert held.outcome == Outcome.HOLD and "up cooldown (600 s)" in held.reason and held.job_id is None


def test_an_unfinished_job_on_the_service_holds_the_decision(world, monkeypatch):
    FakeMetric(monkeypatch, value=100.0)
    p = policy(world["engine"], "shop_web")
    first = evaluation.evaluate(p, "slot:1")
    held = evaluation.evaluate(p, "slot:2")
    assert held.outcome == Outcome.HOLD and f"job #{first.job_id}" in held.reason
    assert Job.objects.count() == 1


def test_scaling_above_the_approval_limit_waits_for_an_approval(world, monkeypatch):
    FakeMetric(monkeypatch, value=100.0)
    p = policy(world["engine"], "shop_web", approval_above=3)
    done = evaluation.evaluate(p, "slot:1")
    job = Job.objects.get(pk=done.job_id)
    assert job.state == "pending_approval" and job.params["replicas"] == 4
    request = ApprovalRequest.objects.get(pk=job.approval_request_id)
    assert request.state == "pending" and request.policies == ["autoscaling: shop_web above 3 replicas"]
    assert "needs approval" in done.reason


def test_scaling_up_to_the_limit_needs_no_approval(world, monkeypatch):
    FakeMetric(monkeypatch, value=100.0)
    done = evaluation.evaluate(policy(world["engine"], "shop_web", approval_above=4), "slot:1")
    assert Job.objects.get(pk=done.job_id).state == "queued"


def test_no_reading_no_service_and_a_disabled_policy_launch_nothing(world, monkeypatch):
    FakeMetric(monkeypatch, value=None)
    p = policy(world["engine"], "shop_web")
    assert evaluation.evaluate(p, "slot:1").outcome == Outcome.NO_METRIC
    assert evaluation.evaluate(policy(world["engine"], "gone"), "slot:1").outcome == Outcome.SKIPPED
    p.enabled = False
    p.save()
    assert evaluation.evaluate(p, "slot:2").outcome == Outcome.SKIPPED
    assert not Job.objects.exists()


def test_a_refused_launch_is_a_failed_evaluation_not_an_error(world, monkeypatch):
    FakeMetric(monkeypatch, value=100.0)
    world["service"].mode = "global"
    world["service"].save()
    skipped = evaluation.evaluate(policy(world["engine"], "shop_web"), "slot:1")
    assert skipped.outcome == Outcome.SKIPPED and "global" in skipped.reason
    assert not Job.objects.exists()
