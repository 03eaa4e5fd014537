"""notify(): deliveries are rows written in the caller's transaction, queued only once it commits."""
import pytest
from django.db import connection, transaction

from ops_portal.notifications import registry, tasks
from ops_portal.notifications.models import Delivery
from ops_portal.notifications.registry import UnknownEvent
from ops_portal.notifications.services import notify
from tests import factories
from tests.notifications.helpers import channel


@pytest.fixture
def queued(monkeypatch):
    """Deliveries handed to the broker (recorded instead of sent)."""
    sent = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, countdown=None, **kw: sent.append(args[0]))
    return sent


@pytest.mark.django_db
def test_one_delivery_per_enabled_subscribed_channel_of_the_environment(envs, queued,
                                                                        django_capture_on_commit_callbacks):
    alpha, beta = envs
    failures = channel(alpha, "failures", events=["job.failed"])
    everything = channel(alpha, "everything", events=["job.finished", "job.failed"])
    mailbox = channel(alpha, "mailbox", kind="email", events=["job.failed"])
    channel(alpha, "successes", events=["job.succeeded"])
    channel(alpha, "off", events=["job.failed"], enabled=False)
    channel(beta, "elsewhere", events=["job.failed"])

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            deliveries = notify("job.failed", environment=alpha, subject="Job 3 failed\nbadly",
                                payload={"job": 3, "when": factories.environment("gamma").created})
            assert queued == []  # nothing leaves before the commit

    assert sorted(d.channel_id for d in deliveries) == sorted([failures.pk, everything.pk, mailbox.pk])
    assert len(callbacks) == 3 and sorted(queued) == sorted(d.pk for d in deliveries)
    for item in Delivery.objects.filter(pk__in=queued):
        assert (item.event, item.environment_name, item.status, item.attempts) == ("job.failed", "alpha",
                                                                                  "pending", 0)
        assert item.subject == "Job 3 failed badly"
        assert isinstance(item.payload["when"], str)  # stored as JSON (ISO time)
        assert item.next_attempt_at is not None


@pytest.mark.django_db
def test_a_broader_subscription_receives_the_specific_events():
    assert registry.subscriptions_for("job.succeeded") == {"job.succeeded", "job.finished"}
    assert registry.subscriptions_for("job.finished") == {"job.finished"}
    assert {"job.succeeded", "job.failed", "job.finished", "approval.requested", "alert.firing", "alert.resolved",
            "test"} <= set(registry.all_events())


@pytest.mark.django_db
def test_unknown_events_are_refused(envs):
    channel(envs[0], events=["job.failed"])
    with pytest.raises(UnknownEvent), transaction.atomic():
        notify("job.exploded", environment=envs[0], subject="?", payload={})
    assert not Delivery.objects.exists()


def test_the_registry_refuses_conflicting_definitions():
    assert registry.register("job.failed", "A job failed", also=("job.finished",)) == "job.failed"
    with pytest.raises(ValueError):
        registry.register("job.failed", "Something else")
    with pytest.raises(ValueError):
        registry.register("Bad Name", "no")
    with pytest.raises(ValueError):
        registry.register("alert.flapping", "An alert flaps", also=("alert.unregistered",))


@pytest.mark.django_db
def test_a_dedupe_key_gives_one_delivery_per_channel(envs, queued, django_capture_on_commit_callbacks):
    channel(envs[0], events=["job.failed"])
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        first = notify("job.failed", environment=envs[0], subject="Job 4 failed", payload={}, dedupe_key="job:4")
        again = notify("job.failed", environment=envs[0], subject="Job 4 failed", payload={}, dedupe_key="job:4")
        other = notify("job.failed", environment=envs[0], subject="Job 5 failed", payload={}, dedupe_key="job:5")
    assert (len(first), again, len(other)) == (1, [], 1)
    assert Delivery.objects.count() == 2 and len(queued) == 2


@pytest.mark.django_db
def test_payloads_must_be_json_objects(envs):
    channel(envs[0])
    with transaction.atomic():
        with pytest.raises(TypeError):
            notify("job.failed", environment=envs[0], subject="x", payload=["not", "a", "dict"])
        with pytest.raises(TypeError):
            notify("job.failed", environment=envs[0], subject="x", payload={"obj": object()})
        with pytest.raises(ValueError):
            notify("job.failed", environment=envs[0], subject="x", payload={"big": "x" * 70000})


@pytest.mark.django_db(transaction=True)
def test_notify_outside_a_transaction_is_refused():
    env = factories.environment("alpha")
    channel(env)
    assert not connection.in_atomic_block
    with pytest.raises(RuntimeError, match="inside the transaction"):
        notify("job.failed", environment=env, subject="x", payload={})
    assert not Delivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_creates_and_sends_nothing(receiver, queued):
    server = receiver()
    env = factories.environment("alpha")
    channel(env, url=server.url(), events=["job.failed"])

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        assert len(notify("job.failed", environment=env, subject="Job 1 failed", payload={"job": 1})) == 1
        raise Boom

    assert not Delivery.objects.exists()
    assert queued == [] and server.requests == []


@pytest.mark.django_db(transaction=True)
def test_a_committed_transaction_queues_its_deliveries(queued):
    env = factories.environment("alpha")
    channel(env, events=["job.finished"])
    with transaction.atomic():
        (item,) = notify("job.succeeded", environment=env, subject="Job 2 succeeded", payload={"job": 2})
        assert queued == []
    assert queued == [item.pk]


@pytest.mark.django_db
def test_notify_many_makes_notifys_deliveries_once_per_key_and_queues_them_through_fan_out_after_commit(
        envs, queued, monkeypatch, django_capture_on_commit_callbacks):
    from ops_portal.notifications.services import notify_many

    alpha, beta = envs
    hook = channel(alpha, "hook", events=["alert.firing"])
    mailbox = channel(alpha, "mailbox", kind="email", events=["alert.firing"])
    channel(alpha, "off", events=["alert.firing"], enabled=False)
    channel(alpha, "jobs", events=["job.failed"])
    channel(beta, "elsewhere", events=["alert.firing"])
    fanned = []  # the fan_out messages, run here as a worker would
    monkeypatch.setattr(tasks.fan_out, "apply_async", lambda args, **kw: (fanned.append(args[0]), tasks.fan_out(*args)))
    with transaction.atomic():  # dedupe_key k1 has a delivery to the hook already, not to the mailbox
        made = notify("alert.firing", environment=alpha, subject="x", payload={}, dedupe_key="k1")
        Delivery.objects.filter(channel=mailbox).delete()
    (already,) = [d for d in made if d.channel_id == hook.pk]
    queued.clear()
    notices = [(f"Alert {n}\nfiring", {"alert": n}, f"k{n}") for n in range(1, 5)] + [("No key", {"n": 0}, "")]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            made = notify_many("alert.firing", environment=alpha, notices=notices)
            assert queued == [] and fanned == []  # nothing leaves before the commit

    assert len(callbacks) == 1  # one hook for all of them
    by_channel = {(d.channel_id, d.dedupe_key) for d in made}
    assert by_channel == ({(hook.pk, f"k{n}") for n in range(2, 5)} | {(mailbox.pk, f"k{n}") for n in range(1, 5)}
                          | {(hook.pk, ""), (mailbox.pk, "")})
    assert sorted(sum(fanned, [])) == sorted(queued) == sorted(d.pk for d in made)
    stored = Delivery.objects.get(channel=hook, dedupe_key="k2")
    assert (stored.event, stored.environment_name, stored.subject, stored.payload, stored.status) == (
        "alert.firing", "alpha", "Alert 2 firing", {"alert": 2}, "pending")
    assert Delivery.objects.filter(channel=hook, dedupe_key="k1").get() == already  # not made twice
    with transaction.atomic():  # the same notices again: every key is delivered already
        assert [d for d in notify_many("alert.firing", environment=alpha, notices=notices[:4])] == []
