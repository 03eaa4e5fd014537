"""The decision rules without a database: which changes are healing needs, which policy covers a
container, the idempotency key, the crash-loop backoff and the requested-stop rule."""
import datetime
from types import SimpleNamespace

from ops_portal.containers.signals import ContainerChange
from ops_portal.healing import rules
from ops_portal.healing.choices import Trigger
from ops_portal.healing.models import HealingPolicy

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


def change(before, after, service_id="", container_id=1, action="die"):
    return ContainerChange(container_id, "c" * 64, "web", before, after, service_id, action)


def running(**extra):
    return {"state": "running", "health": "", "exit_code": None, "restart_count": 0, **extra}


def test_an_exit_and_an_unhealthy_turn_are_needs_and_nothing_else_is():
    assert rules.trigger_of(change(running(), {"state": "exited", "exit_code": 137})) == Trigger.EXIT
    assert rules.trigger_of(change(running(), {"state": "dead"})) == Trigger.EXIT
    assert rules.trigger_of(change(running(health="healthy"), running(health="unhealthy"))) == Trigger.UNHEALTHY
    assert rules.trigger_of(change({}, {"state": "exited"}, action="sync")) is None  # an old exit, resynced
    assert rules.trigger_of(change({}, {"state": "exited"}, action="start")) == Trigger.EXIT  # died at once
    assert rules.trigger_of(change({}, {"state": "created"}, action="create")) is None
    assert rules.trigger_of(change(running(), {})) is None  # removed
    assert rules.trigger_of(change({"state": "exited"}, {"state": "exited", "exit_code": 1})) is None
    assert rules.trigger_of(change({"state": "exited"}, running())) is None  # recovered
    assert rules.trigger_of(change(running(), {"state": "exited"}, service_id="svc")) is None  # Swarm's task
    assert rules.trigger_of(change(running(health="unhealthy"), running(health="unhealthy"))) is None
    assert rules.trigger_of(change(running(), {"state": "exited"}, container_id=None)) is None


def policy(pk, **fields):
    values = {"enabled": True, "on_exit": True, "on_unhealthy": False, "engine_id": None, "container_name": "",
              "label_selector": {}, **fields}
    row = HealingPolicy(pk=pk, **values)
    return row


def box(**fields):
    return SimpleNamespace(**{"engine_id": 7, "name": "web-1", "labels": {"app": "web", "tier": "front"}, **fields})


def test_the_most_specific_covering_policy_wins():
    everywhere = policy(1)
    engine = policy(2, engine_id=7)
    labels = policy(3, label_selector={"app": "web"})
    two_labels = policy(4, label_selector={"app": "web", "tier": ""})
    named = policy(5, container_name="web-1")
    other_engine = policy(6, engine_id=8, container_name="web-1")
    assert rules.choose([everywhere, engine], box(), Trigger.EXIT) is engine
    assert rules.choose([everywhere, engine, labels, two_labels], box(), Trigger.EXIT) is two_labels
    assert rules.choose([everywhere, two_labels, named, other_engine], box(), Trigger.EXIT) is named
    assert rules.choose([policy(9), policy(10)], box(), Trigger.EXIT).pk == 9  # ties: the oldest


def test_a_policy_covers_only_its_triggers_labels_engine_and_name_when_enabled():
    assert rules.choose([policy(1, label_selector={"app": "db"})], box(), Trigger.EXIT) is None
    assert rules.choose([policy(1, label_selector={"missing": ""})], box(), Trigger.EXIT) is None
    assert rules.choose([policy(1, engine_id=8)], box(), Trigger.EXIT) is None
    assert rules.choose([policy(1, container_name="web-2")], box(), Trigger.EXIT) is None
    assert rules.choose([policy(1, enabled=False)], box(), Trigger.EXIT) is None
    assert rules.choose([policy(1)], box(), Trigger.UNHEALTHY) is None
    assert rules.choose([policy(1, on_exit=False, on_unhealthy=True)], box(), Trigger.UNHEALTHY).pk == 1
    assert rules.choose([policy(1, on_exit=False, on_unhealthy=True)], box(), Trigger.EXIT) is None


def test_the_backoff_doubles_from_the_second_attempt_and_is_capped():
    row = policy(1, backoff_seconds=5, backoff_max_seconds=30)
    assert [rules.delay(row, n) for n in range(6)] == [0.0, 5.0, 10.0, 20.0, 30.0, 30.0]
    assert rules.delay(policy(1, backoff_seconds=0, backoff_max_seconds=0), 3) == 0.0


def test_one_exit_has_one_key_and_the_next_exit_another():
    first = box(docker_id="a" * 64, finished_at=T0, started_at=T0, restart_count=0)
    again = box(docker_id="a" * 64, finished_at=T0, started_at=T0, restart_count=0)
    later = box(docker_id="a" * 64, finished_at=T0 + datetime.timedelta(seconds=3), started_at=T0, restart_count=0)
    assert rules.event_key(7, first, Trigger.EXIT) == rules.event_key(7, again, Trigger.EXIT)
    assert rules.event_key(7, first, Trigger.EXIT) != rules.event_key(7, later, Trigger.EXIT)
    assert rules.event_key(7, first, Trigger.EXIT) != rules.event_key(7, first, Trigger.UNHEALTHY)
    assert rules.event_key(7, first, Trigger.EXIT) != rules.event_key(8, first, Trigger.EXIT)
    assert len(rules.event_key(7, box(docker_id="a" * 64, finished_at=None, started_at=None, restart_count=None),
                               Trigger.EXIT)) <= 200


def test_a_stop_reported_since_the_last_start_is_a_requested_stop():
    second = datetime.timedelta(seconds=1)
    assert rules.requested_stop(box(stop_requested_at=T0 + second, started_at=T0))
    assert not rules.requested_stop(box(stop_requested_at=T0 - second, started_at=T0))  # started again since
    assert not rules.requested_stop(box(stop_requested_at=None, started_at=T0))
