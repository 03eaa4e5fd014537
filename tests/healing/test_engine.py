"""Self-healing against the real engine, with the watcher and a worker running as in production:
a container killed with `docker kill` outside the portal shows exited within 2 s through the event
stream and is restarted by a healing job; `docker stop` is a requested stop and is left alone; a
crash loop (the fleet's crasher, CRASH_AFTER=1) is restarted with backoff, then given up with a
crash-loop alert. Policies select this test's own label, so other containers on the shared engine
are never touched."""
import subprocess
import time

import pytest

from ops_portal.containers.models import Container
from ops_portal.healing.choices import ALERT_SOURCE, EventState
from ops_portal.healing.models import HealingEvent
from ops_portal.jobs.models import Job
from ops_portal.monitoring.models import Alert
from tests.containers.helpers import engine as make_engine
from tests.containers.helpers import synced
from tests.healing.helpers import policy
from tests.live import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]
LABEL = "opsportal.heal"


@pytest.fixture
def local(env, watcher):
    row = make_engine(env)
    wait_for(lambda: synced(row.pk), 60, "the first resync", watcher)
    return row


def run(docker_client, image, name, prefix, **options):
    return docker_client.containers.run(image, name=name, detach=True, labels={LABEL: prefix}, **options)


def stored(local, docker_id, watcher, state="running"):
    wait_for(lambda: Container.objects.filter(engine=local, docker_id=docker_id, state=state).exists(), 10,
             f"the container {state} in the inventory", watcher)
    return Container.objects.get(engine=local, docker_id=docker_id)


def test_a_container_killed_outside_the_portal_is_seen_within_two_seconds_and_restarted(
        env, local, docker_client, ct_images, prefix, watcher, live_worker):
    policy(env, label_selector={LABEL: prefix}, backoff_seconds=1)
    created = run(docker_client, ct_images["web:v1"], f"{prefix}-heal", prefix)
    row = stored(local, created.id, watcher)
    first_start = row.started_at
    started = time.monotonic()
    subprocess.run(["docker", "kill", created.id], check=True, capture_output=True)
    # Exited in the inventory (healing may start it again soon after: the need it recorded counts too).
    wait_for(lambda: Container.objects.filter(pk=row.pk, state="exited").exists()
             or HealingEvent.objects.filter(docker_id=created.id).exists(), 2,
             "the kill through the event stream within 2 s", watcher, interval=0.02)
    seen = time.monotonic() - started
    assert seen < 2.0, seen
    wait_for(lambda: HealingEvent.objects.filter(docker_id=created.id, state=EventState.LAUNCHED).exists(), 30,
             "the healing decision", watcher)
    event = HealingEvent.objects.get(docker_id=created.id)
    assert event.exit_code == 137 and event.attempt == 1
    wait_for(lambda: Job.objects.get(pk=event.job_id).state == "succeeded", 60, "the restart job", live_worker)
    job = Job.objects.get(pk=event.job_id)
    assert job.action == "container.restart" and job.is_system
    state = docker_client.api.inspect_container(created.id)["State"]
    assert state["Status"] == "running"
    wait_for(lambda: Container.objects.filter(engine=local, docker_id=created.id, state="running").exists(), 10,
             "the restarted container in the inventory", watcher)
    assert Container.objects.get(engine=local, docker_id=created.id).started_at > first_start
    print(f"\nkill seen in {seen:.2f} s; healed (running again) "
          f"{(job.finished - event.created).total_seconds():.2f} s after the exit was recorded")

    # docker stop is a requested stop (the engine's "stop" event): left alone, whatever the exit code.
    subprocess.run(["docker", "stop", "-t", "1", created.id], check=True, capture_output=True)
    wait_for(lambda: HealingEvent.objects.filter(docker_id=created.id, state=EventState.SKIPPED).exists(), 30,
             "the stop's decision", watcher)
    skipped = HealingEvent.objects.get(docker_id=created.id, state=EventState.SKIPPED)
    assert "stopped on request" in skipped.reason
    time.sleep(2)
    assert docker_client.api.inspect_container(created.id)["State"]["Status"] == "exited"
    assert HealingEvent.objects.filter(docker_id=created.id, state=EventState.LAUNCHED).count() == 1


def test_a_crash_loop_is_restarted_with_backoff_then_given_up_with_an_alert(
        env, local, docker_client, ct_images, prefix, watcher, live_worker):
    policy(env, label_selector={LABEL: prefix}, backoff_seconds=1, backoff_max_seconds=2, max_attempts=3,
           window_seconds=300)
    created = run(docker_client, ct_images["crasher"], f"{prefix}-loop", prefix, environment={"CRASH_AFTER": "1"})
    name = f"{prefix}-loop"
    try:
        wait_for(lambda: Alert.objects.filter(source=ALERT_SOURCE, key=f"container:{local.pk}:{name}",
                                              state="firing").exists(), 120, "the crash-loop alert", watcher)
    except AssertionError:
        rows = HealingEvent.objects.filter(engine=local, container_name=name).values_list(
            "state", "reason", "exit_code", "job__state", "created", "decided")
        stored_row = Container.objects.filter(engine=local, docker_id=created.id).values().first()
        raise AssertionError(f"healing events: {list(rows)}; stored: {stored_row}") from None
    events = list(HealingEvent.objects.filter(engine=local, container_name=name).order_by("created"))
    launched = [e for e in events if e.state == EventState.LAUNCHED]
    assert len(launched) == 3 and [e.attempt for e in launched] == [1, 2, 3]
    assert [e.delay_seconds for e in launched] == [0.0, 1.0, 2.0]
    gaps = [(b.decided - a.decided).total_seconds() for a, b in zip(launched, launched[1:], strict=False)]
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0, gaps
    assert events[-1].state == EventState.GAVE_UP and "crash loop" in events[-1].reason
    assert all(e.exit_code == 3 for e in events)
    alert = Alert.objects.get(source=ALERT_SOURCE, key=f"container:{local.pk}:{name}")
    assert alert.severity == "critical" and name in alert.summary
    assert (alert.subject_kind, alert.subject_name) == ("container", name)
    assert alert.subject_id == Container.objects.get(engine=local, docker_id=created.id).pk
    time.sleep(3)  # given up: no more jobs
    row = Container.objects.get(engine=local, docker_id=created.id)
    assert Job.objects.filter(action="container.restart", targets__kind="container",
                              targets__ref_id=row.pk).count() == 3
    assert docker_client.api.inspect_container(created.id)["State"]["Status"] == "exited"
