"""Actions that act on a whole batch at once (ActionSpec.run_batch, used by ansible.playbook): the
runner calls them once per strategy batch with that batch's targets, stores each target as the
action reports it, counts failures against the threshold between batches, and fails (or cancels)
a target the action left unreported. Per-target actions run as before."""
import threading

import pytest
from django.core.exceptions import ValidationError

from ops_portal.jobs import actions
from ops_portal.jobs import launch as launching
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job, JobEvent
from ops_portal.jobs.runner import JobRunner, claim
from ops_portal.jobs.strategy import validate
from schedulers.base import BackendError, CommandResult
from tests import factories
from tests.helpers import operator
from tests.jobs.helpers import local_hosts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def batch_action(monkeypatch):
    """A "batch.poke" action whose behaviour each test sets: it records the batches it got."""
    calls = []
    behaviour = {"fail": set(), "skip_report": set(), "raise": None}

    def run_batch(batch):
        calls.append([t.name for t in batch.targets])
        batch.output(None, "stdout", f"batch of {len(batch.targets)}")
        if behaviour["raise"]:
            raise behaviour["raise"]
        for target in batch.targets:
            batch.output(target, "stdout", f"poked {target.name}")
            if target.name in behaviour["skip_report"]:
                continue
            failed = target.name in behaviour["fail"]
            batch.finish(target, CommandResult(exit_code=2 if failed else 0, error="boom" if failed else "",
                                               changed=not failed, data={"counts": {"ok": 1, "failed": int(failed)}}))

    monkeypatch.setattr(actions, "_ACTIONS", dict(actions._ACTIONS))
    actions.register(actions.ActionSpec(name="batch.poke", label="Poke a batch", target_kind="host", parameters=[],
                                        run=None, run_batch=run_batch, mutating=False))
    monkeypatch.setattr(launching, "enqueue", lambda job: None)
    env = factories.environment("alpha")
    local_hosts(env, 4)
    return env, calls, behaviour


def run(job):
    claimed = claim(job.pk, "test-worker")
    JobRunner(claimed.job).run()
    return Job.objects.get(pk=job.pk)


def launch(env, strategy=None):
    return launch_adhoc(operator(env), environment=env, action="batch.poke", selector={"all": True},
                        strategy=strategy)


def test_the_action_runs_once_per_batch_and_each_target_is_stored_as_reported(batch_action):
    env, calls, _ = batch_action
    job = run(launch(env, {"kind": "rolling", "batch_size": 2, "limit": 2}))
    assert job.state == JobState.SUCCEEDED
    assert calls == [["h-1", "h-2"], ["h-3", "h-4"]]
    assert {t.state for t in job.targets.all()} == {TargetState.OK}
    assert all(t.changed and t.data["counts"] == {"ok": 1, "failed": 0} for t in job.targets.all())
    texts = list(JobEvent.objects.filter(job=job, kind="output").values_list("target", "text"))
    assert (None, "batch of 2") in texts and (job.targets.get(name="h-3").index, "poked h-3") in texts
    target_event = JobEvent.objects.filter(job=job, kind="target", text="h-1").latest("seq")
    assert target_event.data["counts"] == {"ok": 1, "failed": 0}  # the live grid shows them


def test_a_failed_target_fails_only_itself_and_the_threshold_stops_the_next_batches(batch_action):
    env, calls, behaviour = batch_action
    behaviour["fail"] = {"h-2"}
    job = run(launch(env))
    assert job.state == JobState.FAILED
    assert {t.name: t.state for t in job.targets.all()} == {
        "h-1": TargetState.OK, "h-2": TargetState.FAILED, "h-3": TargetState.OK, "h-4": TargetState.OK}
    calls.clear()
    job = run(launch(env, {"kind": "rolling", "batch_size": 2, "max_failures": 0}))
    assert calls == [["h-1", "h-2"]]
    assert [t.state for t in job.targets.order_by("index")] == [
        TargetState.OK, TargetState.FAILED, TargetState.SKIPPED, TargetState.SKIPPED]
    assert "Rollout stopped: 1 targets failed" in job.error


def test_targets_the_action_did_not_report_fail_with_its_error(batch_action):
    env, _, behaviour = batch_action
    behaviour["skip_report"] = {"h-4"}
    job = run(launch(env))
    assert job.targets.get(name="h-4").state == TargetState.FAILED
    assert "without a result" in job.targets.get(name="h-4").error
    behaviour["raise"] = BackendError("ansible-playbook could not start")
    job = run(launch(env))
    assert {(t.state, t.error) for t in job.targets.all()} == {(TargetState.FAILED, "ansible-playbook could not start")}


def test_a_cancel_during_the_batch_cancels_its_unreported_targets(batch_action, monkeypatch):
    env, _, behaviour = batch_action
    job = launch(env)
    claimed = claim(job.pk, "test-worker")
    runner = JobRunner(claimed.job)
    stopped = threading.Event()

    def run_batch(batch):
        batch.finish(batch.targets[0], CommandResult(exit_code=0))
        runner.cancel.cancel("canceled")
        stopped.set()

    monkeypatch.setattr(runner, "spec", actions.ActionSpec(name="batch.poke", label="x", target_kind="host",
                                                           parameters=[], run=None, run_batch=run_batch))
    runner.run()
    job = Job.objects.get(pk=job.pk)
    assert stopped.is_set() and job.state == JobState.CANCELED
    assert [t.state for t in job.targets.order_by("index")] == [TargetState.OK] + [TargetState.CANCELED] * 3


def test_a_batch_action_is_no_rollback_action(batch_action):
    with pytest.raises(ValidationError, match="runs per batch"):
        validate({"kind": "rolling", "batch_size": 1, "rollback_action": "batch.poke"})


def test_a_targets_event_carries_puppets_resources_and_revision_for_the_live_grid(monkeypatch):
    resources = {"total": 3, "changed": 1, "failed": 0, "out_of_sync": 1, "unchanged": 2}

    def run_batch(batch):
        for target in batch.targets:
            batch.finish(target, CommandResult(exit_code=2, changed=True, data={
                "resources": resources, "revision": "f" * 40, "manifest": "manifests/site.pp", "puppet_exit": 2}))

    monkeypatch.setattr(actions, "_ACTIONS", dict(actions._ACTIONS))
    actions.register(actions.ActionSpec(name="batch.puppetish", label="Puppet-like", target_kind="host",
                                        parameters=[], run=None, run_batch=run_batch, mutating=False))
    monkeypatch.setattr(launching, "enqueue", lambda job: None)
    env = factories.environment("alpha")
    local_hosts(env, 1)
    job = run(launch_adhoc(operator(env), environment=env, action="batch.puppetish", selector={"all": True}))
    event = JobEvent.objects.filter(job=job, kind="target", text="h-1").latest("seq")
    assert event.data["resources"] == resources and event.data["revision"] == "f" * 40
    assert "manifest" not in event.data and "puppet_exit" not in event.data  # only what the grid draws
