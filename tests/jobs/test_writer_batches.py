"""The EventWriter's batched calls: targets' changes merged into few statements, in order with plain calls."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from ops_portal.inventory.choices import Reachability
from ops_portal.inventory.models import Host
from ops_portal.inventory.services import note_reachable_many
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.events import EventWriter
from ops_portal.jobs.models import Job, JobTarget
from ops_portal.jobs.runner import store_targets
from tests.helpers import operator
from tests.jobs.helpers import launch, local_hosts

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(env):
    """A job with 4 targets that no worker runs (a live worker of another test may be up): it is
    marked running before its launch commits, so a worker's claim leaves it alone."""
    local_hosts(env, 4)
    with transaction.atomic():
        job = launch(operator(env), env, "true")
        Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING)
    return job


def test_a_flush_of_many_targets_stores_each_targets_last_values_and_counts_the_ended(job):
    started = timezone.now() - timedelta(seconds=5)
    writer = EventWriter(job)
    for index in range(4):
        writer.call_batched(store_targets, (job.pk, index, {"state": TargetState.RUNNING, "started": started},
                                            False, False))
        writer.call_batched(store_targets, (job.pk, index, {"data": {"session": 100 + index}}, False, False))
    finished = timezone.now()
    writer.call_batched(store_targets, (job.pk, 0, {"state": TargetState.OK, "exit_code": 0, "changed": True,
                                                    "error": "", "finished": finished,
                                                    "data": {"session": 100}}, True, False))
    writer.call_batched(store_targets, (job.pk, 1, {"state": TargetState.FAILED, "exit_code": 3, "changed": None,
                                                    "error": "it's 'quoted' %s \\ ünïcode", "finished": finished,
                                                    "data": None}, True, True))
    writer.close()
    rows = {t.index: t for t in JobTarget.objects.filter(job=job)}
    assert (rows[0].state, rows[0].exit_code, rows[0].changed, rows[0].started, rows[0].finished, rows[0].data) == (
        TargetState.OK, 0, True, started, finished, {"session": 100})
    assert (rows[1].state, rows[1].exit_code, rows[1].changed, rows[1].error, rows[1].data) == (
        TargetState.FAILED, 3, None, "it's 'quoted' %s \\ ünïcode", None)
    for index in (2, 3):
        assert (rows[index].state, rows[index].started, rows[index].finished, rows[index].data) == (
            TargetState.RUNNING, started, None, {"session": 100 + index})
    job = Job.objects.get(pk=job.pk)
    assert (job.targets_done, job.targets_failed) == (2, 1)


def test_a_plain_call_sees_the_batched_changes_queued_before_it_and_not_those_after(job):
    seen = []
    writer = EventWriter(job)
    writer.call_batched(store_targets, (job.pk, 0, {"state": TargetState.RUNNING}, False, False))
    writer.call(lambda: seen.append(JobTarget.objects.get(job=job, index=0).state))
    writer.call_batched(store_targets, (job.pk, 0, {"state": TargetState.OK}, True, False))
    writer.call(lambda: seen.append((JobTarget.objects.get(job=job, index=0).state,
                                     Job.objects.get(pk=job.pk).targets_done)))
    writer.call_batched(store_targets, (job.pk, 0, {"state": TargetState.ROLLED_BACK}, False, False))
    writer.close()
    assert seen == [TargetState.RUNNING, (TargetState.OK, 1)]
    assert JobTarget.objects.get(job=job, index=0).state == TargetState.ROLLED_BACK


def test_a_value_too_long_for_its_column_fails_the_flush_rather_than_being_cut(job):
    writer = EventWriter(job)
    for index in range(2):
        writer.call_batched(store_targets, (job.pk, index, {"state": "x" * 40}, False, False))
    with pytest.raises(RuntimeError):
        writer.close()
    assert set(JobTarget.objects.filter(job=job).values_list("state", flat=True)) == {TargetState.PENDING}


def test_hosts_reached_together_are_noted_in_one_go(env, job):
    hosts = list(Host.objects.filter(environment=env).order_by("pk"))
    Host.objects.filter(pk__in=[h.pk for h in hosts]).update(reachability=Reachability.UNREACHABLE, last_error="x")
    writer = EventWriter(job)
    for host in hosts[:3]:
        writer.call_batched(note_reachable_many, host.pk)
    writer.close()
    states = dict(Host.objects.filter(environment=env).values_list("name", "reachability"))
    assert states == {hosts[0].name: Reachability.REACHABLE, hosts[1].name: Reachability.REACHABLE,
                      hosts[2].name: Reachability.REACHABLE, hosts[3].name: Reachability.UNREACHABLE}


def test_the_writers_batch_and_backpressure_bounds_come_from_the_settings(job, settings, monkeypatch):
    """JOB_EVENTS_MAX_BATCH bounds what one flush stores; JOB_EVENTS_MAX_UNSTORED makes the reading
    thread wait once that many lines are read and not stored (here: while the store is held)."""
    import threading

    from ops_portal.jobs import events

    settings.JOB_EVENTS_MAX_BATCH, settings.JOB_EVENTS_MAX_UNSTORED = 100, 150
    sizes, gate = [], threading.Event()
    real = events.insert_rows

    def held(rows):
        gate.wait(30)
        sizes.append(len(rows))
        real(rows)

    monkeypatch.setattr(events, "insert_rows", held)
    writer = EventWriter(job)
    done = threading.Event()

    def read():
        for i in range(400):
            writer.output(None, "stdout", f"line {i}")
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert not done.wait(1.0)  # 150 lines read, none stored: the reader waits
    gate.set()
    assert done.wait(30)
    reader.join()
    writer.close()
    assert sum(sizes) == 400 and max(sizes) <= 100, sizes
    assert list(job.events.order_by("seq").values_list("text", flat=True)) == [f"line {i}" for i in range(400)]
