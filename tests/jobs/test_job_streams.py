"""Job streams over websockets: resume from seq N with no gap and no duplicate, live progress,
and the permission layer on every stream."""
import pytest
from asgiref.sync import sync_to_async

from ops_portal.accounts.choices import Role
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.lifecycle import publish_job
from ops_portal.jobs.models import Job
from tests import factories
from tests.helpers import operator, person
from tests.jobs.helpers import launch, local_hosts, wait_job
from tests.wsclient import communicator, receive_until, session_cookie_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.live]


async def _socket(user):
    comm = communicator(await sync_to_async(session_cookie_for)(user))
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["type"] == "hello"
    return comm


async def _collect(comm, sub_id, until_seq, timeout=30):
    seqs, items = [], []

    def take(message):
        if message["type"] == "events" and message["id"] == sub_id:
            for item in message["items"]:
                seqs.append(item["seq"])
                items.append(item)
        return bool(seqs) and seqs[-1] >= until_seq

    await receive_until(comm, take, timeout=timeout)
    return seqs, items


async def test_a_late_client_gets_exactly_the_events_after_its_seq(live_worker):
    @sync_to_async
    def run():
        env = factories.environment("alpha")
        local_hosts(env, 1)
        actor = operator(env)
        return actor.user, wait_job(launch(actor, env, "seq 1 3000"), JobState.SUCCEEDED)

    user, job = await run()
    comm = await _socket(user)
    await comm.send_json_to({"action": "subscribe", "id": "j", "stream": "job", "params": {"job": job.pk},
                             "since": 1200})
    seqs, items = await _collect(comm, "j", job.last_seq)
    assert seqs == list(range(1201, job.last_seq + 1))
    assert any(i.get("text") == "2000" for i in items)
    await comm.disconnect()


async def test_a_reconnecting_client_misses_nothing_of_a_running_job(live_worker):
    @sync_to_async
    def start():
        env = factories.environment("beta")
        local_hosts(env, 2)
        actor = operator(env)
        return actor.user, launch(actor, env, "for i in $(seq 1 400); do echo line $i; sleep 0.005; done")

    user, job = await start()
    comm = await _socket(user)
    await comm.send_json_to({"action": "subscribe", "id": "a", "stream": "job", "params": {"job": job.pk}})
    first, _ = await _collect(comm, "a", 50)
    await comm.disconnect()  # the connection drops mid-job
    done = await sync_to_async(wait_job)(job, JobState.SUCCEEDED)
    comm = await _socket(user)
    await comm.send_json_to({"action": "subscribe", "id": "b", "stream": "job", "params": {"job": job.pk},
                             "since": first[-1]})
    rest, items = await _collect(comm, "b", done.last_seq)
    assert first + rest == list(range(1, done.last_seq + 1))
    assert items[-1]["data"] == {"state": "succeeded"}
    await comm.disconnect()


async def test_the_jobs_list_stream_shows_progress_in_visible_environments_only(live_worker):
    @sync_to_async
    def setup():
        mine, other = factories.environment("mine"), factories.environment("other")
        local_hosts(mine, 1, "m"), local_hosts(other, 1, "o")
        viewer = person(mine, Role.VIEWER)
        return viewer, operator(mine), operator(other), mine, other

    viewer, mine_op, other_op, mine, other = await setup()
    comm = await _socket(viewer)
    await comm.send_json_to({"action": "subscribe", "id": "l", "stream": "jobs"})
    await receive_until(comm, lambda m: m["type"] == "subscribed")
    hidden = await sync_to_async(launch)(other_op, other, "true")
    shown = await sync_to_async(launch)(mine_op, mine, "true")
    seen = []

    def finished(message):
        if message["type"] == "events":
            seen.extend(message["items"])
        return any(i["id"] == shown.pk and i["state"] == "succeeded" for i in seen)

    await receive_until(comm, finished, timeout=30)
    assert {i["id"] for i in seen} == {shown.pk}
    assert hidden.pk not in {i["id"] for i in seen}
    await comm.disconnect()


async def test_job_and_object_streams_are_authorised(live_worker):
    @sync_to_async
    def setup():
        env, other = factories.environment("a1"), factories.environment("b1")
        host = local_hosts(other, 1)[0]
        job = Job.objects.create(name="x", environment=other, action="host.command", plan_hash="x")
        viewer = person(env, Role.VIEWER)
        return viewer, job, host

    viewer, job, host = await setup()
    comm = await _socket(viewer)
    for sub_id, stream, params in (("1", "job", {"job": job.pk}), ("2", "object", {"kind": "host", "id": host.pk}),
                                   ("3", "jobs", {"environment": "b1"}), ("4", "job", {"job": 999999})):
        await comm.send_json_to({"action": "subscribe", "id": sub_id, "stream": stream, "params": params})
        reply = await comm.receive_json_from()
        assert (reply["id"], reply["type"], reply["code"]) == (sub_id, "error", "forbidden")
    await comm.send_json_to({"action": "subscribe", "id": "5", "stream": "job", "params": {"job": "1; drop"}})
    assert (await comm.receive_json_from())["code"] == "invalid"
    await comm.disconnect()


async def test_an_objects_stream_follows_jobs_on_that_host(live_worker):
    @sync_to_async
    def setup():
        env = factories.environment("objs")
        hosts = local_hosts(env, 2)
        return operator(env), env, hosts

    actor, env, hosts = await setup()
    comm = await _socket(await sync_to_async(lambda: actor.user)())
    await comm.send_json_to({"action": "subscribe", "id": "o", "stream": "object",
                             "params": {"kind": "host", "id": hosts[0].pk}})
    await receive_until(comm, lambda m: m["type"] == "subscribed")
    other_job = await sync_to_async(launch)(actor, env, "true", selector={"names": ["h-2"]})
    job = await sync_to_async(launch)(actor, env, "true", selector={"names": ["h-1"]})
    seen = []

    def done(message):
        if message["type"] == "events":
            seen.extend(message["items"])
        return any(i["id"] == job.pk and i["state"] == "succeeded" for i in seen)

    await receive_until(comm, done, timeout=30)
    assert other_job.pk not in {i["id"] for i in seen}
    await comm.disconnect()


async def test_a_hosts_stream_does_not_show_jobs_of_the_environment_it_left():
    """No worker needed: the jobs are published as their launch would publish them."""
    from django.db import transaction
    @sync_to_async
    def setup():
        staging, production = factories.environment("left"), factories.environment("joined")
        host = local_hosts(staging, 1)[0]
        old = Job.objects.create(name="old", environment=staging, action="host.command", plan_hash="x")
        old.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
        host.environment = production
        host.save()
        new = Job.objects.create(name="new", environment=production, action="host.command", plan_hash="x")
        new.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
        viewer = person(production, Role.VIEWER)
        return viewer, host, old, new

    @sync_to_async
    def publish(*jobs):
        with transaction.atomic():
            for job in jobs:
                publish_job(job)

    viewer, host, old, new = await setup()
    comm = await _socket(viewer)
    await comm.send_json_to({"action": "subscribe", "id": "o", "stream": "object",
                             "params": {"kind": "host", "id": host.pk}})
    await receive_until(comm, lambda m: m["type"] == "subscribed")
    await publish(old, new)
    seen = []

    def got_new(message):
        if message["type"] == "events":
            seen.extend(message["items"])
        return any(i["id"] == new.pk for i in seen)

    await receive_until(comm, got_new, timeout=15)
    assert old.pk not in {i["id"] for i in seen}
    await comm.disconnect()


async def test_live_events_that_cross_between_two_writers_reach_a_client_in_order_once():
    """Two slices' writers publish after their own commits, so seqs 4-5 can arrive before 1-3:
    the consumer reads 1-3 from the database first. No worker: the writes are done here."""
    from django.utils import timezone

    from ops_portal.core import streams
    from ops_portal.jobs import groups
    from ops_portal.jobs.events import insert_rows, reserve_seqs
    from ops_portal.jobs.models import JobEvent

    @sync_to_async
    def setup():
        env = factories.environment("crossed")
        host = local_hosts(env, 1)[0]
        job = Job.objects.create(name="crossed", environment=env, action="host.command", plan_hash="x")
        job.targets.create(index=0, kind="host", ref_id=host.pk, name=host.name)
        return person(env, Role.VIEWER), job

    @sync_to_async
    def write(texts):
        from django.db import transaction
        with transaction.atomic():
            first = reserve_seqs(job.pk, len(texts))
            rows = [(job.pk, seq, timezone.now(), "output", 0, "stdout", text, None)
                    for seq, text in enumerate(texts, start=first)]
            insert_rows(rows)
        return [JobEvent.wire(seq, kind, when, text, target, stream, data)
                for _, seq, when, kind, target, stream, text, data in rows]

    viewer, job = await setup()
    comm = await _socket(viewer)
    await comm.send_json_to({"action": "subscribe", "id": "j", "stream": "job", "params": {"job": job.pk}})
    await receive_until(comm, lambda m: m["type"] == "subscribed")
    first_writer = await write(["a1", "a2", "a3"])
    second_writer = await write(["b1", "b2"])
    await sync_to_async(streams.publish_many)(groups.job(job.pk), second_writer)  # crosses ahead
    await sync_to_async(streams.publish_many)(groups.job(job.pk), first_writer)
    seqs, items = await _collect(comm, "j", 5)
    assert seqs == [1, 2, 3, 4, 5] and [i["text"] for i in items] == ["a1", "a2", "a3", "b1", "b2"]
    assert await comm.receive_nothing(timeout=1)  # the late copies of 1-3 are not delivered again
    await comm.disconnect()
