"""The receiver and the decisions on the database (the engine faked by rows, jobs real but not run):
one decision per engine event however often it is reported, the requested-stop rule, the
crash-loop backoff and limit, the alert raised on the limit and resolved once the container stays up."""
import datetime

import pytest
from django.utils import timezone

from ops_portal.audit.models import AuditEvent
from ops_portal.containers.models import Container
from ops_portal.core.context import Actor
from ops_portal.healing import healer, receivers
from ops_portal.healing.choices import ALERT_SOURCE, EventState
from ops_portal.healing.models import HealingEvent
from ops_portal.jobs.models import Job
from ops_portal.monitoring.models import Alert
from tests.containers.helpers import container as make_container
from tests.containers.helpers import engine as make_engine
from tests.containers.helpers import operator
from tests.healing.helpers import exited, policy

pytestmark = pytest.mark.django_db


class Sent:
    """Stands in for the Celery app: keeps the tasks the receiver and the healer queue."""

    def __init__(self):
        self.calls = []

    def send_task(self, name, args, countdown=None, **options):
        self.calls.append((name, args, countdown))


@pytest.fixture
def sent(monkeypatch):
    fake = Sent()
    monkeypatch.setattr(receivers, "current_app", fake)
    return fake


@pytest.fixture
def engine(env):
    return make_engine(env, state="ok")


def crashed(engine, name="web-1", code=3, finished=None, **fields):
    now = timezone.now()
    return make_container(engine, name, state="exited", exit_code=code, started_at=now - datetime.timedelta(seconds=5),
                          finished_at=finished or now, restart_count=0, labels={"app": "web"}, **fields)


def report(engine, *changes, capture):
    with capture(execute=True):
        return receivers.on_container_changed(sender=None, engine=engine, changes=list(changes))


def test_an_exit_reported_twice_is_recorded_and_queued_once(env, engine, sent, django_capture_on_commit_callbacks):
    policy(env, label_selector={"app": "web"})
    row = crashed(engine)
    assert len(report(engine, exited(row), capture=django_capture_on_commit_callbacks)) == 1
    # The same die again (the job's own store, a second watcher, a resync): nothing new.
    assert report(engine, exited(row), capture=django_capture_on_commit_callbacks) == []
    event = HealingEvent.objects.get()
    assert (event.state, event.trigger, event.exit_code, event.container_name) == ("pending", "exit", 3, "web-1")
    assert sent.calls == [("healing.decide", (event.pk,), 1.0)]


def test_containers_no_policy_covers_and_swarm_tasks_are_not_recorded(env, engine, sent,
                                                                       django_capture_on_commit_callbacks):
    policy(env, label_selector={"app": "db"})
    assert report(engine, exited(crashed(engine)), capture=django_capture_on_commit_callbacks) == []
    policy(env, name="all")
    task = crashed(engine, "shop_web.1", service_id="svc123")
    assert report(engine, exited(task), capture=django_capture_on_commit_callbacks) == []
    assert not HealingEvent.objects.exists() and sent.calls == []


def need(env, engine, sent, capture, **policy_fields):
    row = crashed(engine)
    report(engine, exited(row), capture=capture)
    return HealingEvent.objects.get(docker_id=row.docker_id), row


def test_a_crash_launches_a_restart_job_as_the_system_and_a_second_decision_does_nothing(
        env, engine, sent, django_capture_on_commit_callbacks):
    policy(env)
    event, row = need(env, engine, sent, django_capture_on_commit_callbacks)
    decided = healer.decide(event.pk)
    assert decided.state == EventState.LAUNCHED and decided.attempt == 1
    job = Job.objects.get(pk=decided.job_id)
    assert job.action == "container.restart" and job.is_system
    assert list(job.targets.values_list("kind", "ref_id")) == [("container", row.pk)]
    audit = AuditEvent.objects.get(action="healing.launch")
    assert audit.object_id == str(event.pk) and audit.extra["job"] == job.pk and audit.actor_name == ""
    healer.decide(event.pk)  # a redelivered task
    assert Job.objects.filter(action="container.restart").count() == 1
    assert AuditEvent.objects.filter(action="healing.launch").count() == 1


def test_recreate_policies_launch_recreate_jobs(env, engine, sent, django_capture_on_commit_callbacks):
    policy(env, action="recreate")
    event, _ = need(env, engine, sent, django_capture_on_commit_callbacks)
    assert Job.objects.get(pk=healer.decide(event.pk).job_id).action == "container.recreate"


@pytest.mark.parametrize("situation, reason", [
    ("running", "running again"),
    ("docker_stop", "stopped on request"),
    ("stop_job", "stopped on purpose by job"),
    ("clean_exit", "exited with code 0"),
    ("gone", "the container is gone"),
    ("policy_disabled", "no enabled policy"),
])
def test_wanted_or_finished_exits_are_left_alone(env, engine, sent, django_capture_on_commit_callbacks, situation,
                                                 reason):
    rule = policy(env)
    event, row = need(env, engine, sent, django_capture_on_commit_callbacks)
    if situation == "running":
        Container.objects.filter(pk=row.pk).update(state="running")
    elif situation == "docker_stop":  # the watcher saw the engine's "stop" event after the last start
        Container.objects.filter(pk=row.pk).update(stop_requested_at=timezone.now())
    elif situation == "stop_job":
        from ops_portal.containers import services

        services.launch_containers(operator(env), "container.stop", [row])
    elif situation == "clean_exit":
        Container.objects.filter(pk=row.pk).update(exit_code=0)
    elif situation == "gone":
        row.delete()
    elif situation == "policy_disabled":
        rule.enabled = False
        rule.save()
    decided = healer.decide(event.pk)
    assert decided.state == EventState.SKIPPED and reason in decided.reason, decided.reason
    assert not Job.objects.filter(action="container.restart").exists()
    assert AuditEvent.objects.filter(action="healing.skip", object_id=str(event.pk)).exists()


def test_exit_code_zero_is_healed_when_the_policy_says_so(env, engine, sent, django_capture_on_commit_callbacks):
    policy(env, heal_clean_exit=True)
    event, row = need(env, engine, sent, django_capture_on_commit_callbacks)
    Container.objects.filter(pk=row.pk).update(exit_code=0)
    assert healer.decide(event.pk).state == EventState.LAUNCHED


def launched_attempt(engine, row, when):
    return HealingEvent.objects.create(key=f"old-{when.timestamp()}", environment=engine.environment, engine=engine,
                                       docker_id=row.docker_id, container_name=row.name, trigger="exit",
                                       state=EventState.LAUNCHED, decided=when)


def test_later_attempts_wait_out_an_exponential_backoff(env, engine, sent, django_capture_on_commit_callbacks):
    policy(env, backoff_seconds=4, backoff_max_seconds=60, max_attempts=5, window_seconds=600)
    event, row = need(env, engine, sent, django_capture_on_commit_callbacks)
    now = timezone.now()
    launched_attempt(engine, row, now - datetime.timedelta(seconds=30))
    launched_attempt(engine, row, now - datetime.timedelta(seconds=1))
    sent.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        waiting = healer.decide(event.pk, now)
    # The third attempt waits 4 * 2 = 8 s after the last one.
    assert waiting.state == EventState.WAITING and waiting.delay_seconds == 8.0
    assert waiting.not_before == now - datetime.timedelta(seconds=1) + datetime.timedelta(seconds=8)
    assert sent.calls == [("healing.decide", (event.pk,), pytest.approx(7.0))]
    assert healer.decide(event.pk, now + datetime.timedelta(seconds=3)).state == EventState.WAITING  # early
    launched = healer.decide(event.pk, now + datetime.timedelta(seconds=8))
    assert launched.state == EventState.LAUNCHED and launched.attempt == 3


def test_attempts_outside_the_window_do_not_count(env, engine, sent, django_capture_on_commit_callbacks):
    policy(env, max_attempts=1, window_seconds=60)
    event, row = need(env, engine, sent, django_capture_on_commit_callbacks)
    launched_attempt(engine, row, timezone.now() - datetime.timedelta(seconds=61))
    assert healer.decide(event.pk).state == EventState.LAUNCHED


def test_a_crash_loop_past_the_limit_gives_up_with_an_alert_resolved_once_the_container_stays_up(
        env, engine, sent, django_capture_on_commit_callbacks):
    policy(env, max_attempts=2, window_seconds=600, stable_seconds=30)
    event, row = need(env, engine, sent, django_capture_on_commit_callbacks)
    now = timezone.now()
    launched_attempt(engine, row, now - datetime.timedelta(seconds=20))
    launched_attempt(engine, row, now - datetime.timedelta(seconds=10))
    with django_capture_on_commit_callbacks(execute=True):
        decided = healer.decide(event.pk, now)
    assert decided.state == EventState.GAVE_UP and "crash loop" in decided.reason
    alert = Alert.objects.get(source=ALERT_SOURCE)
    assert alert.state == "firing" and alert.key == f"container:{engine.pk}:web-1" and alert.environment == env
    assert "web-1" in alert.summary and "crash loop" in alert.summary
    assert (alert.subject_kind, alert.subject_id, alert.subject_name) == ("container", row.pk, "web-1")
    assert AuditEvent.objects.filter(action="healing.gave_up").exists()
    assert not Job.objects.filter(action="container.restart").exists()
    # A person starts it: up for less than the stable time, the alert stays; after it, it resolves.
    Container.objects.filter(pk=row.pk).update(state="running", started_at=now)
    assert healer.settle(now + datetime.timedelta(seconds=10)) == []
    assert healer.settle(now + datetime.timedelta(seconds=31)) == [alert.key]
    alert.refresh_from_db()
    assert alert.state == "resolved" and "stayed up" in alert.resolution


def test_the_alert_of_a_removed_container_resolves(env, engine, sent):
    from ops_portal.monitoring import services as monitoring

    monitoring.raise_external(ALERT_SOURCE, f"container:{engine.pk}:gone-1", environment=env, severity="critical",
                              summary="crash loop", actor=Actor.system())
    assert healer.settle() == [f"container:{engine.pk}:gone-1"]
    assert Alert.objects.get(source=ALERT_SOURCE).state == "resolved"
