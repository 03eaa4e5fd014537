"""Sliced jobs without workers: slice planning and validation, seq numbers reserved by several
writers, the failure threshold across slices, the reaper losing one slice only, the job ending
with its last slice, and the slices on the job page and in the API."""
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import slices, tasks
from ops_portal.jobs import strategy as strategies
from ops_portal.jobs.choices import EventKind, JobState, SliceState, TargetState
from ops_portal.jobs.events import EventWriter, reserve_seqs
from ops_portal.jobs.launch_forms import StrategyForm
from ops_portal.jobs.models import Job, JobEvent, JobSlice, JobTarget
from ops_portal.jobs.runner import JobRunner, claim
from tests import factories
from tests.helpers import act, person, wait_until
from tests.jobs.helpers import launch


def seqs_of(job):
    return list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", flat=True))


# Planning and validation ---------------------------------------------------------------------

@pytest.mark.parametrize("count, strategy, expected", [
    (10, {"slices": 2}, [(0, 5), (5, 10)]),
    (10, {"slices": 3}, [(0, 4), (4, 7), (7, 10)]),
    (10, {"slice_size": 4}, [(0, 4), (4, 7), (7, 10)]),
    (3, {"slices": 5}, [(0, 1), (1, 2), (2, 3)]),  # never more slices than targets
    (10, {"slices": 1}, []),
    (10, {"slice_size": 10}, []),
    (10, {}, []),
    (0, {"slices": 2}, []),
])
def test_slices_are_planned_as_consecutive_ranges_of_nearly_equal_size(count, strategy, expected):
    assert strategies.plan_slices(count, strategy) == expected


def test_1000_targets_in_64_slices_cover_every_target_once():
    ranges = strategies.plan_slices(1000, {"slices": 64})
    covered = [i for first, last in ranges for i in range(first, last)]
    assert covered == list(range(1000)) and {last - first for first, last in ranges} == {15, 16}


@pytest.mark.parametrize("strategy, message", [
    ({"slices": 0}, "slices must be"),
    ({"slices": 65}, "slices must be"),
    ({"slices": "2"}, "slices must be"),
    ({"slice_size": 0}, "slice_size must be"),
    ({"slices": 2, "slice_size": 5}, "slices or slice_size"),
    ({"kind": "rolling", "batch_size": 2, "slices": 2}, "slices go with a parallel strategy"),
    ({"slices": 2, "rollback_action": "host.command"}, "slices go with a parallel strategy"),
])
def test_bad_slicing_is_refused(strategy, message):
    with pytest.raises(ValidationError) as raised:
        strategies.validate(strategy)
    assert any(m.startswith(message) for m in raised.value.message_dict["strategy"]), raised.value


def test_an_unsliced_strategy_is_stored_as_before():
    assert strategies.validate({"kind": "parallel", "limit": 5}) == {"kind": "parallel", "limit": 5}
    assert strategies.validate({"slices": 2, "limit": 5}) == {"kind": "parallel", "limit": 5, "slices": 2}


def test_the_launch_form_shows_a_slicing_error_on_its_field():
    form = StrategyForm(data={"strategy_kind": "rolling", "batch_size": 2, "slices": 2})
    assert not form.is_valid()
    assert form.errors["slices"] == ["slices go with a parallel strategy: rolling batches, health gates and "
                                     "rollback actions are not supported with slices."]
    form = StrategyForm(data={"strategy_kind": "parallel", "limit": 10, "slice_size": 50})
    assert form.is_valid(), form.errors
    assert form.chosen_strategy() == {"kind": "parallel", "limit": 10, "slice_size": 50}


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", [{"slices": 0}, {"kind": "rolling", "batch_size": 1, "slices": 2},
                                      {"slices": 2, "slice_size": 3}])
def test_the_api_refuses_bad_slicing_with_a_400_and_no_job(api, make_user, env, strategy):
    factories.host(env, "app-1")
    api.force_authenticate(make_user(Role.OPERATOR, env))
    response = api.post("/api/jobs/", {"environment": env.name, "action": "host.command",
                                       "params": {"command": "true"}, "selector": {"names": ["app-1"]},
                                       "strategy": strategy}, format="json")
    assert response.status_code == 400, response.content
    assert "strategy" in response.json()["error"]["fields"]
    assert not Job.objects.exists()


# Sliced jobs claimed without a worker ------------------------------------------------------------

@pytest.fixture
def sliced(db, env):
    """Launch a job over 6 local hosts of a site no worker serves, in `strategy`'s slices, and claim it."""
    site = factories.site("nowhere")
    for i in range(1, 7):
        factories.host(env, f"h-{i}", transport=Transport.LOCAL, site=site)
    actor = act(person(env, Role.OPERATOR))

    def make(command="true", **strategy):
        job = launch(actor, env, command, strategy={"kind": "parallel", "limit": 3, **strategy})
        outcome = claim(job.pk, "claimer@test")
        assert outcome.job is not None and outcome.slices == len(JobSlice.objects.filter(job=job))
        return outcome.job

    return make


@pytest.mark.django_db(transaction=True)
def test_claiming_a_sliced_job_plans_its_slices_and_takes_each_once(sliced):
    job = sliced(slices=2)
    assert job.queue == "site.nowhere" and job.state == JobState.RUNNING
    planned = list(JobSlice.objects.filter(job=job).values_list("number", "first", "last", "state"))
    assert planned == [(1, 0, 3, SliceState.QUEUED), (2, 3, 6, SliceState.QUEUED)]
    one = JobSlice.objects.get(job=job, number=1)
    assert slices.take(one.pk, "w1@test").worker == "w1@test"
    assert slices.take(one.pk, "w2@test") is None  # a task delivered twice runs its slice once
    assert JobSlice.objects.get(pk=one.pk).worker == "w1@test"
    # The claim's events open the job's one stream: running, then how it was sliced.
    assert list(JobEvent.objects.filter(job=job).order_by("seq").values_list("seq", "kind")) == [
        (1, EventKind.STATE), (2, EventKind.INFO)]


@pytest.mark.django_db(transaction=True)
def test_an_unsliced_job_has_no_slices():
    env = factories.environment("plain")
    factories.host(env, "solo", transport=Transport.LOCAL, site=factories.site("nowhere2"))
    job = launch(act(person(env, Role.OPERATOR)), env, "true", strategy={"kind": "parallel", "limit": 2,
                                                                        "slices": 1})
    outcome = claim(job.pk, "claimer@test")
    assert outcome.job is not None and outcome.slices == 0 and not JobSlice.objects.filter(job=job).exists()


# Seq numbers from several writers ----------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_second_writer_reserves_its_seqs_only_after_the_first_commits(sliced):
    job = sliced(slices=2)
    start = Job.objects.get(pk=job.pk).last_seq
    a_reserved, a_commit, b_done = threading.Event(), threading.Event(), threading.Event()
    got = {}

    def writer_a():
        try:
            with transaction.atomic():
                got["a"] = reserve_seqs(job.pk, 3)
                a_reserved.set()
                a_commit.wait(10)
        finally:
            connection.close()

    def writer_b():
        a_reserved.wait(10)
        try:
            with transaction.atomic():
                got["b"] = reserve_seqs(job.pk, 2)
                got["b_at"] = time.monotonic()
            b_done.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=writer_a), threading.Thread(target=writer_b)]
    for thread in threads:
        thread.start()
    assert a_reserved.wait(10)
    assert not b_done.wait(0.5), "the second writer reserved while the first held the job row"
    released = time.monotonic()
    a_commit.set()
    for thread in threads:
        thread.join(10)
    assert got["a"] == start + 1 and got["b"] == start + 4 and got["b_at"] >= released
    assert Job.objects.get(pk=job.pk).last_seq == start + 5


@pytest.mark.django_db(transaction=True)
def test_two_writers_of_one_job_store_one_gapless_stream_each_in_its_own_order(sliced):
    job = sliced(slices=2)
    writers = [EventWriter(job), EventWriter(job)]

    def produce(writer, name):
        for i in range(400):
            writer.output(None, "stdout", f"{name} {i}")
            if i % 50 == 0:
                time.sleep(0.01)

    threads = [threading.Thread(target=produce, args=(w, n)) for w, n in zip(writers, "ab", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for writer in writers:
        writer.close()
    seqs = seqs_of(job)
    assert seqs == list(range(1, len(seqs) + 1)) and Job.objects.get(pk=job.pk).last_seq == len(seqs)
    for name in "ab":
        texts = list(JobEvent.objects.filter(job=job, text__startswith=f"{name} ").order_by("seq")
                     .values_list("text", flat=True))
        assert texts == [f"{name} {i}" for i in range(400)]


# The failure threshold across slices --------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_failures_in_another_slice_stop_a_running_slice(sliced):
    job = sliced(command="sleep 1", slices=2, max_failures=1, limit=1)
    first, second = JobSlice.objects.filter(job=job).order_by("number")
    slices.take(first.pk, "w1@test")
    taken = slices.take(second.pk, "w2@test")
    runner = threading.Thread(target=lambda: (JobRunner(taken.job, taken).run(), connection.close()))
    runner.start()  # slice 2: one target at a time, 1 s each
    wait_until(lambda: JobTarget.objects.filter(job=job, index=3, state=TargetState.RUNNING).exists(), 10,
               "slice 2's first target running")
    # Meanwhile slice 1 (on a worker elsewhere) failed two targets: over the job's threshold of 1.
    JobTarget.objects.filter(job=job, index__in=[0, 1]).update(state=TargetState.FAILED)
    Job.objects.filter(pk=job.pk).update(targets_failed=2, targets_done=2)
    runner.join(20)
    states = dict(JobTarget.objects.filter(job=job, index__gte=3).values_list("index", "state"))
    assert states[3] == TargetState.OK and states[5] == TargetState.SKIPPED, states
    second.refresh_from_db()
    assert second.state == SliceState.DONE
    assert second.error == "rollout stopped: 2 targets of the job failed (threshold 1)"
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING  # slice 1 still runs


@pytest.mark.django_db(transaction=True)
def test_a_slice_starting_after_the_threshold_was_passed_starts_no_target(sliced):
    job = sliced(command="true", slices=2, max_failures=0)
    JobTarget.objects.filter(job=job, index=0).update(state=TargetState.FAILED)
    Job.objects.filter(pk=job.pk).update(targets_failed=1, targets_done=1)
    taken = slices.take(JobSlice.objects.get(job=job, number=2).pk, "w2@test")
    JobRunner(taken.job, taken).run()
    assert set(JobTarget.objects.filter(job=job, index__gte=3).values_list("state", flat=True)) == {
        TargetState.SKIPPED}


@pytest.mark.django_db(transaction=True)
def test_a_cancel_reaches_slices_started_after_it_and_the_job_ends_canceled(sliced):
    job = sliced(command="true", slices=2)
    Job.objects.filter(pk=job.pk).update(cancel_requested=timezone.now())
    for job_slice in JobSlice.objects.filter(job=job).order_by("number"):
        taken = slices.take(job_slice.pk, f"w{job_slice.number}@test")
        JobRunner(taken.job, taken).run()
    assert set(JobTarget.objects.filter(job=job).values_list("state", flat=True)) == {TargetState.CANCELED}
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELED


# Lost slices ---------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_reaper_loses_only_the_slice_whose_heartbeat_stopped(sliced, monkeypatch):
    job = sliced(slices=2)
    first, second = JobSlice.objects.filter(job=job).order_by("number")
    slices.take(first.pk, "dead@test")
    slices.take(second.pk, "alive@test")
    JobTarget.objects.filter(job=job, index__in=[0, 3, 4]).update(state=TargetState.RUNNING)
    JobTarget.objects.filter(job=job, index=1).update(state=TargetState.OK)
    old = timezone.now() - timedelta(minutes=5)
    JobSlice.objects.filter(pk=first.pk).update(heartbeat=old)
    Job.objects.filter(pk=job.pk).update(heartbeat=old)  # a sliced job is watched by its slices' heartbeats
    monkeypatch.setattr(tasks, "LOST_AFTER", timedelta(seconds=60))
    assert tasks.reap_lost_jobs() == 1
    states = dict(JobTarget.objects.filter(job=job).values_list("index", "state"))
    assert states == {0: TargetState.LOST, 1: TargetState.OK, 2: TargetState.SKIPPED,
                      3: TargetState.RUNNING, 4: TargetState.RUNNING, 5: TargetState.PENDING}
    assert dict(JobSlice.objects.filter(job=job).values_list("number", "state")) == {
        1: SliceState.LOST, 2: SliceState.RUNNING}
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING
    # The second slice ends: the job ends with it, failed, its error naming the lost slice's worker.
    JobTarget.objects.filter(job=job, index__gte=3).update(state=TargetState.OK)
    second.refresh_from_db()
    assert slices.end_slice(second)
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.FAILED
    assert "slice 1 (targets 1–3) lost" in job.error and "dead@test" in job.error
    assert AuditEvent.objects.filter(object_id=str(job.pk), action="job.failed").count() == 1
    assert seqs_of(job) == list(range(1, job.last_seq + 1))
    kinds = list(JobEvent.objects.filter(job=job).order_by("seq").values_list("kind", "data"))
    assert kinds[-1] == (EventKind.STATE, {"state": JobState.FAILED})


@pytest.mark.django_db(transaction=True)
def test_a_restarted_worker_loses_its_own_slices_only(sliced):
    job = sliced(slices=3)
    numbers = list(JobSlice.objects.filter(job=job).order_by("number"))
    slices.take(numbers[0].pk, "me@test")
    slices.take(numbers[1].pk, "other@test")

    class Sender:
        hostname = "me@test"

    tasks._reap_own_jobs_on_start(Sender())
    assert list(JobSlice.objects.filter(job=job).order_by("number").values_list("state", flat=True)) == [
        SliceState.LOST, SliceState.RUNNING, SliceState.QUEUED]
    assert Job.objects.get(pk=job.pk).state == JobState.RUNNING


@pytest.mark.django_db(transaction=True)
def test_a_sliced_job_whose_slices_all_ran_through_succeeds(sliced):
    job = sliced(slices=2)
    for job_slice in JobSlice.objects.filter(job=job):
        slices.take(job_slice.pk, f"w{job_slice.number}@test")
    JobTarget.objects.filter(job=job).update(state=TargetState.OK)
    first, second = JobSlice.objects.filter(job=job).order_by("number")
    assert slices.end_slice(first) and Job.objects.get(pk=job.pk).state == JobState.RUNNING
    assert slices.end_slice(second)
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.SUCCEEDED and job.error == ""
    assert not slices.end_slice(second)  # ended once


# The page and the API --------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_job_page_and_api_show_the_slices(sliced, client, api, env):
    job = sliced(slices=2)
    slices.take(JobSlice.objects.get(job=job, number=1).pk, "w1@test")
    JobTarget.objects.filter(job=job, index__in=[0, 1]).update(state=TargetState.OK)
    JobTarget.objects.filter(job=job, index=2).update(state=TargetState.FAILED)
    viewer = person(env, Role.VIEWER)
    client.force_login(viewer)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<caption>Slices</caption>" in page and "w1@test" in page
    live = client.get(f"/jobs/{job.pk}/live/").content.decode()
    assert 'data-slice="2"' in live
    api.force_authenticate(viewer)
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert [(s["number"], s["state"], s["worker"], s["targets"], s["done"], s["failed"]) for s in body["slices"]] == [
        (1, "running", "w1@test", 3, 3, 1), (2, "queued", "", 3, 0, 0)]


@pytest.mark.django_db(transaction=True)
def test_the_dispatcher_sends_again_a_slice_whose_message_was_lost(sliced, monkeypatch):
    """A slice still queued two minutes after its job's claim may have lost its message (a broker
    restart): the dispatcher sends it again, on the job's queue; a slice already taken is left."""
    job = sliced(slices=2)
    first, second = JobSlice.objects.filter(job=job).order_by("number")
    slices.take(first.pk, "w1@test")
    sent = []
    monkeypatch.setattr(tasks.run_slice, "apply_async", lambda args, queue: sent.append((args, queue)))
    assert tasks.dispatch_waiting() == 0  # just claimed: its messages are still on their way
    Job.objects.filter(pk=job.pk).update(started=timezone.now() - timedelta(minutes=3))
    assert tasks.dispatch_waiting() == 1
    assert sent == [((second.pk,), "site.nowhere")]


@pytest.mark.django_db(transaction=True)
def test_a_running_job_whose_slices_no_worker_can_take_says_so(sliced):
    from ops_portal.jobs import live

    job = sliced(slices=2)
    first = JobSlice.objects.get(job=job, number=1)
    assert live.why_waiting(job) == ("Slices 1, 2 not started: no worker for site nowhere; they run as soon as a "
                                     "worker takes queue site.nowhere.")
    slices.take(first.pk, "w1@test")
    assert live.why_waiting(job) == ("Slice 2 not started: no worker for site nowhere; it runs as soon as a worker "
                                     "takes queue site.nowhere.")


@pytest.mark.django_db(transaction=True)
def test_slices_no_worker_can_take_raise_the_sites_alert_until_none_waits(sliced):
    from ops_portal.monitoring import site_workers
    from ops_portal.monitoring.models import Alert

    job = sliced(slices=2)
    assert site_workers.check() == [f"site:nowhere:environment:{job.environment_id}"]
    assert "1 job waiting" in Alert.objects.get(source="site_workers", state="firing").summary
    for job_slice in JobSlice.objects.filter(job=job):
        slices.take(job_slice.pk, "w1@test")
    assert site_workers.check() == []
    assert not Alert.objects.filter(source="site_workers", state="firing").exists()
