"""The jobs engine through a target kind that is not host: a "widget" kind and a "widget.poke"
action registered by the test itself, the way a new level registers its own (core.targets and
jobs.actions). Jobs resolve, plan, hash, lease, run and relaunch through the kind, and the engine
never needs to know what a widget is."""
from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError

from ops_portal.core import targets
from ops_portal.jobs import actions
from ops_portal.jobs import launch as launching
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.gating import current_plan_hash
from ops_portal.jobs.launch import launch_adhoc, relaunch
from ops_portal.jobs.models import Job, JobEvent, Lease
from ops_portal.jobs.runner import JobRunner, claim
from ops_portal.jobs.streams import ObjectJobsStream
from schedulers.base import CommandResult
from tests import factories
from tests.helpers import operator, person
from tests.jobs.helpers import local_hosts

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Widget:
    pk: int
    name: str
    environment_id: int
    color: str
    enabled: bool = True


class WidgetKind(targets.TargetKind):
    """Widgets live in a dict, not in a table: the engine must only go through the kind."""

    name = "widget"
    label = "Widget"
    list_keys = ("names",)

    def __init__(self):
        self.store = {}

    def select(self, selector, environment):
        found = [w for w in self.store.values() if w.environment_id == environment.pk and w.enabled]
        if selector.get("names"):
            found = [w for w in found if w.name in selector["names"]]
        return sorted(found, key=lambda w: w.name)

    def load(self, ref_ids):
        return {pk: self.store[pk] for pk in ref_ids if pk in self.store}

    def available(self, ref_ids, environment):
        return {pk: w for pk, w in self.load(ref_ids).items() if w.environment_id == environment.pk and w.enabled}

    def fingerprint(self, widget):
        return {"color": widget.color}

    def lease_key(self, ref_id):
        return f"widget-lease-{ref_id}"


def poke(ctx):
    ctx.output("stdout", f"poked {ctx.obj.name} ({ctx.obj.color})")
    return CommandResult(exit_code=0, changed=True)


@pytest.fixture
def widgets(monkeypatch):
    kind = WidgetKind()
    monkeypatch.setitem(targets._KINDS, kind.name, kind)
    monkeypatch.setattr(actions, "_ACTIONS", dict(actions._ACTIONS))
    actions.register(actions.ActionSpec(name="widget.poke", label="Poke", target_kind="widget", parameters=[],
                                        run=poke))
    sent = []  # no worker here knows widgets: the test claims and runs the job itself
    monkeypatch.setattr(launching, "enqueue", lambda job: sent.append(job.pk))
    env = factories.environment("alpha")
    for pk, name, color in [(1, "w-1", "red"), (2, "w-2", "blue"), (3, "other", "green")]:
        kind.store[pk] = Widget(pk, name, env.pk, color)
    return kind, env, sent


def test_a_job_resolves_plans_leases_runs_and_relaunches_through_its_target_kind(widgets):
    kind, env, sent = widgets
    actor = operator(env)
    job = launch_adhoc(actor, environment=env, action="widget.poke",
                       selector={"kind": "widget", "names": ["w-1", "w-2"]})
    assert sent == [job.pk] and job.state == JobState.QUEUED
    assert list(job.targets.order_by("index").values_list("kind", "ref_id", "name", "fingerprint")) == [
        ("widget", 1, "w-1", {"color": "red"}), ("widget", 2, "w-2", {"color": "blue"})]
    # The plan hash is recomputed through the kind: today's widgets give the approved hash...
    assert current_plan_hash(job)[0] == job.plan_hash
    kind.store[2].color = "purple"  # ...and a changed widget another one.
    assert current_plan_hash(job)[0] != job.plan_hash
    kind.store[2].color = "blue"

    claimed = claim(job.pk, "test-worker")
    assert claimed.job is not None and claimed.job.state == JobState.RUNNING
    assert set(Lease.objects.filter(job=job).values_list("target_key", flat=True)) == {
        "widget-lease-1", "widget-lease-2"}
    JobRunner(claimed.job).run()
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.SUCCEEDED and not Lease.objects.filter(job=job).exists()
    assert set(job.targets.values_list("state", flat=True)) == {TargetState.OK}
    lines = set(JobEvent.objects.filter(job=job, kind="output").values_list("text", flat=True))
    assert lines == {"poked w-1 (red)", "poked w-2 (blue)"}  # ctx.obj came from the kind's load()

    again = relaunch(actor, job)
    assert list(again.targets.order_by("index").values_list("kind", "ref_id")) == [("widget", 1), ("widget", 2)]
    kind.store[2].enabled = False
    with pytest.raises(ValidationError, match="No longer available: w-2"):
        relaunch(actor, job)


def test_the_kind_validates_its_selector_and_the_action_its_kind(widgets):
    kind, env, _ = widgets
    with pytest.raises(ValidationError, match="Unknown selector keys: tags"):
        targets.validate({"kind": "widget", "tags": ["blue"]})
    with pytest.raises(ValidationError, match="kind must be one of"):
        targets.validate({"kind": "gadget", "all": True})
    local_hosts(env, 1)
    with pytest.raises(ValidationError, match="widget.poke acts on widget targets, not on host"):
        launch_adhoc(operator(env), environment=env, action="widget.poke", selector={"all": True})
    with pytest.raises(ValidationError, match="host.command acts on host targets, not on widget"):
        launch_adhoc(operator(env), environment=env, action="host.command", values={"command": "true"},
                     selector={"kind": "widget", "all": True})


def test_an_objects_job_stream_is_found_through_its_kind(widgets):
    kind, env, _ = widgets
    viewer = person(env, "viewer")
    assert ObjectJobsStream().groups(viewer, {"kind": "widget", "id": 1}) == [f"obj.widget.1.env.{env.pk}"]
    stranger = factories.user()
    with pytest.raises(Exception, match="You may not view that object"):
        ObjectJobsStream().groups(stranger, {"kind": "widget", "id": 1})
