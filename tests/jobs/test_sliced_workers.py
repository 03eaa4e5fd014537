"""Sliced jobs through two real Celery workers on one queue and light SSH hosts (fleet/light.py):
each worker runs a slice, the job's events are one gapless stream, and a worker killed mid-job
loses only its slice's targets."""
import time
from datetime import timedelta

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.jobs import tasks
from ops_portal.jobs.choices import EventKind, JobState, SliceState, TargetState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import JobEvent, JobSlice, JobTarget
from tests import factories
from tests.helpers import act, fleet_credential, fleet_host, person, wait_until
from tests.jobs.helpers import wait_job
from tests.live import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.light]


@pytest.fixture
def two_workers(light_fleet, live_env, live_logs):
    """Light hosts of site "sliced" (so their jobs go to queue site.sliced) and two workers on it."""
    env = factories.environment("sliced")
    actor = act(person(env, Role.ADMIN))
    credential = fleet_credential(actor, env, light_fleet)
    site = factories.site("sliced")

    def hosts(count):
        return [fleet_host(actor, env, credential, host, tags=["sliced"], site=site)
                for host in light_fleet.hosts[:count]]

    workers = [start_worker(live_env, live_logs, name=f"slicer-{n}", concurrency=1, queues="site.sliced")
               for n in (1, 2)]
    try:
        yield env, actor, hosts, workers
    finally:
        for worker in workers:
            worker.stop()


def _launch(env, actor, command, slices=2, limit=10):
    return launch_adhoc(actor, environment=env, action="host.command", values={"command": command},
                        selector={"tags": ["sliced"]}, strategy={"kind": "parallel", "limit": limit,
                                                                 "slices": slices})


def _one_stream(job):
    seqs = list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and job.last_seq == len(seqs)


def test_a_job_sliced_over_two_workers_completes_with_one_stream(two_workers):
    env, actor, hosts, workers = two_workers
    hosts(40)
    job = wait_job(_launch(env, actor, "uname -a"), JobState.SUCCEEDED, timeout=120)
    assert job.queue == "site.sliced" and job.targets_done == 40 and job.targets_failed == 0
    ran = list(JobSlice.objects.filter(job=job).order_by("number").values_list("first", "last", "state", "worker"))
    assert [(first, last, state) for first, last, state, _ in ran] == [(0, 20, SliceState.DONE),
                                                                       (20, 40, SliceState.DONE)]
    assert {worker for *_, worker in ran} == {w.hostname for w in workers}, ran
    targets = list(JobTarget.objects.filter(job=job).values_list("index", "name", "state"))
    assert {state for _, _, state in targets} == {TargetState.OK}
    _one_stream(job)
    names = {index: name for index, name, _ in targets}
    lines = dict(JobEvent.objects.filter(job=job, stream="stdout").values_list("target", "text"))
    assert len(lines) == 40 and all(text.startswith(f"Linux {names[i]} ") for i, text in lines.items())
    finals = list(JobEvent.objects.filter(job=job, kind=EventKind.STATE).order_by("seq").values_list("text", flat=True))
    assert finals == [JobState.RUNNING, JobState.SUCCEEDED]  # one start and one end, though two runners


def test_killing_one_worker_mid_job_loses_only_its_slices_targets(two_workers, monkeypatch):
    env, actor, hosts, workers = two_workers
    hosts(10)
    job = _launch(env, actor, "sleep 5", limit=5)
    wait_until(lambda: JobTarget.objects.filter(job=job, state=TargetState.RUNNING).count() == 10, 60,
               "all 10 targets running in two slices")
    victim = JobSlice.objects.get(job=job, number=1)
    dead = next(w for w in workers if w.hostname == victim.worker)
    dead.stop(sig=9)
    killed_at = time.monotonic()
    monkeypatch.setattr(tasks, "LOST_AFTER", timedelta(seconds=3))
    wait_until(lambda: tasks.reap_lost_jobs() or None, 20, "the reaper losing the dead worker's slice",
               interval=0.5)
    assert time.monotonic() - killed_at < 20
    job = wait_job(job, JobState.FAILED, timeout=60)
    states = dict(JobTarget.objects.filter(job=job).values_list("index", "state"))
    assert {states[i] for i in range(5)} == {TargetState.LOST}, states
    assert {states[i] for i in range(5, 10)} == {TargetState.OK}, states
    assert dict(JobSlice.objects.filter(job=job).values_list("number", "state")) == {
        1: SliceState.LOST, 2: SliceState.DONE}
    assert "slice 1 (targets 1–5) lost" in job.error and victim.worker in job.error, job.error
    _one_stream(job)
