"""Websockets: authenticate before accepting, authorise every subscription, deliver events."""
import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from ops_portal.accounts.choices import Role
from ops_portal.core import status, streams
from tests import factories
from tests.helpers import api_token, person
from tests.wsclient import communicator, receive_until, session_cookie_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@sync_to_async
def viewer_of(env_name):
    environment = factories.environment(env_name)
    other = factories.environment(f"{env_name}-other")
    user = person(environment, Role.VIEWER)
    return user, environment, other, session_cookie_for(user)


async def test_an_unauthenticated_socket_is_refused_before_accept():
    comm = communicator()
    connected, code = await comm.connect()
    assert not connected
    await comm.disconnect()


async def test_a_bad_token_is_refused():
    comm = communicator(token="opt_" + "x" * 40)
    connected, _ = await comm.connect()
    assert not connected


async def test_a_viewer_cannot_subscribe_to_another_environments_stream():
    user, environment, other, cookie = await viewer_of("alpha")
    comm = communicator(cookie)
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from())["type"] == "hello"
    await comm.send_json_to({"action": "subscribe", "id": "a", "stream": "status",
                             "params": {"environment": other.name}})
    denied = await comm.receive_json_from()
    assert (denied["type"], denied["id"], denied["code"]) == ("error", "a", "forbidden")
    await comm.send_json_to({"action": "subscribe", "id": "b", "stream": "status",
                             "params": {"environment": "no-such-env"}})
    assert (await comm.receive_json_from())["code"] == "forbidden"  # same answer: no probing names
    await comm.send_json_to({"action": "subscribe", "id": "c", "stream": "status",
                             "params": {"environment": environment.name}})
    assert (await comm.receive_json_from()) == {"type": "subscribed", "id": "c", "stream": "status"}
    # Events for the other environment never reach this socket; its own do.
    await sync_to_async(streams.publish)(status.environment_group(other.pk), {"message": "secret"})
    await sync_to_async(streams.publish)(status.environment_group(environment.pk), {"message": "mine"})
    message = await comm.receive_json_from(timeout=5)
    assert message == {"type": "events", "id": "c", "items": [{"message": "mine"}]}
    await comm.disconnect()


async def test_a_revoked_binding_stops_new_subscriptions_on_an_open_socket():
    user, environment, _, cookie = await viewer_of("gamma")
    comm = communicator(cookie)
    await comm.connect()
    await comm.receive_json_from()
    await sync_to_async(lambda: user.role_bindings.all().delete())()
    await comm.send_json_to({"action": "subscribe", "id": "x", "stream": "status",
                             "params": {"environment": environment.name}})
    assert (await comm.receive_json_from())["code"] == "forbidden"
    await comm.disconnect()


async def test_bad_messages_get_errors_not_disconnects():
    _, _, _, cookie = await viewer_of("delta")
    comm = communicator(cookie)
    await comm.connect()
    await comm.receive_json_from()
    for message in ({"action": "subscribe", "id": "a", "stream": "nope"},
                    {"action": "subscribe", "id": "", "stream": "status"},
                    {"action": "subscribe", "id": "b", "stream": "status", "since": -1},
                    {"action": "dance"}):
        await comm.send_json_to(message)
        assert (await comm.receive_json_from())["code"] == "invalid"
    await comm.send_json_to({"action": "ping", "id": "p"})
    assert await comm.receive_json_from() == {"type": "pong", "id": "p"}
    await comm.disconnect()


async def test_a_token_client_can_subscribe():
    @sync_to_async
    def token_user():
        user = factories.user()
        return api_token(user, "ws")[1], user

    key, user = await token_user()
    comm = communicator(token=key)
    connected, _ = await comm.connect()
    assert connected
    assert (await comm.receive_json_from())["user"] == user.username
    await comm.send_json_to({"action": "subscribe", "id": "s", "stream": "status"})
    assert (await comm.receive_json_from())["type"] == "subscribed"
    await sync_to_async(streams.publish)(status.user_group(user.pk), {"message": "hi"})
    messages = await receive_until(comm, lambda m: m["type"] == "events")
    assert messages[-1]["items"] == [{"message": "hi"}]
    await comm.disconnect()


async def test_a_live_event_is_dropped_not_raised_while_redis_is_away(caplog):
    """A job's state change must not fail because Redis restarts: live delivery is best effort."""
    from django.test import override_settings

    from tests.live import free_port

    away = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                        "CONFIG": {"hosts": [{"address": f"redis://127.0.0.1:{free_port()}/0",
                                              "socket_connect_timeout": 1}]}}}
    with override_settings(CHANNEL_LAYERS=away):
        await sync_to_async(streams.publish)(status.SYSTEM_GROUP, {"message": "lost"})
        await sync_to_async(streams.publish_many)("job.1", [{"seq": 1, "text": "lost"}])
        await sync_to_async(streams.publish_to)(["jobs.env.1", "jobs.obj.host.1.1"], {"message": "lost"})
    assert "live event for status.system not sent" in caplog.text
    assert "live event for jobs.env.1, jobs.obj.host.1.1 not sent" in caplog.text


async def test_one_event_published_to_several_groups_reaches_each_of_them():
    """publish_to: a job's summary to its targets' object streams, over one connection."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    groups = [f"test.publish-to.{n}" for n in range(3)]
    channels = [await layer.new_channel() for _ in groups]
    for group, channel in zip(groups, channels, strict=True):
        await layer.group_add(group, channel)
    await sync_to_async(streams.publish_to)(groups, {"message": "all"})
    for group, channel in zip(groups, channels, strict=True):
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message == {"type": "stream.event", "group": group, "payload": {"message": "all"}}


async def test_a_long_backlog_comes_page_by_page_in_order_then_live_events(monkeypatch):
    """The backlog of an ordered stream is read and sent a page at a time (the first lines reach the
    client before the rest is read); together with events published meanwhile: no gap, no repeat."""
    from django.utils import timezone

    from ops_portal.core import consumers
    from ops_portal.jobs import groups
    from ops_portal.jobs.models import Job, JobEvent
    from ops_portal.jobs.streams import event_payload

    monkeypatch.setattr(consumers, "BACKLOG_PAGE", 7)
    pages = []
    original = type(streams.get("job")).backlog

    def counting(self, user, params, since, limit):
        page = original(self, user, params, since, limit)
        pages.append((since, len(page)))
        return page

    monkeypatch.setattr(type(streams.get("job")), "backlog", counting)

    @sync_to_async
    def make():
        user, environment, _, cookie = viewer_of.func("epsilon")
        job = Job.objects.create(name="log", environment=environment, action="host.command", plan_hash="0" * 64,
                                 state="running", last_seq=30)
        JobEvent.objects.bulk_create(JobEvent(job=job, seq=n, time=timezone.now(), kind="output", target=0,
                                              stream="stdout", text=f"line {n}") for n in range(1, 31))
        return job, cookie

    job, cookie = await make()
    comm = communicator(cookie)
    await comm.connect()
    await comm.receive_json_from()
    await comm.send_json_to({"action": "subscribe", "id": "j", "stream": "job", "params": {"job": job.pk},
                             "since": 3})
    assert (await comm.receive_json_from())["type"] == "subscribed"
    frames, seqs = [], []

    def take(message):
        if message["type"] == "events":
            frames.append(len(message["items"]))
            seqs.extend(item["seq"] for item in message["items"])
        return bool(seqs) and seqs[-1] >= 30

    await receive_until(comm, take, timeout=10)
    assert seqs == list(range(4, 31))
    assert pages == [(3, 7), (10, 7), (17, 7), (24, 6)] and len(frames) >= 4

    @sync_to_async
    def live():
        event = JobEvent.objects.create(job=job, seq=31, time=timezone.now(), kind="output", target=0,
                                        stream="stdout", text="line 31")
        streams.publish_many(groups.job(job.pk), [event_payload(event)])

    await live()
    await receive_until(comm, lambda message: take(message) and seqs[-1] >= 31, timeout=10)
    assert seqs == list(range(4, 32))
    await comm.disconnect()


async def follow_job(cookie, job):
    """A socket subscribed to the job's stream from seq 0: (communicator, the seqs received so far,
    until(n): a receive_until predicate that collects seqs until n arrived)."""
    comm = communicator(cookie)
    await comm.connect()
    await comm.receive_json_from()
    await comm.send_json_to({"action": "subscribe", "id": "j", "stream": "job", "params": {"job": job.pk},
                             "since": 0})
    assert (await comm.receive_json_from())["type"] == "subscribed"
    seqs = []

    def until(upto):
        def take(message):
            if message["type"] == "events":
                seqs.extend(item["seq"] for item in message["items"])
            return bool(seqs) and seqs[-1] >= upto
        return take

    return comm, seqs, until


async def test_a_live_batch_after_a_gap_is_sent_after_the_gap_read_from_the_database():
    """Live delivery is best effort (a web process away from Redis for a moment misses batches) and
    two writers of one job may publish out of order: a batch that starts after the next seq makes
    the consumer read the missing events from the database first. The client sees each seq once,
    in order; a repeat that arrives late is dropped."""
    from django.utils import timezone

    from ops_portal.jobs import groups
    from ops_portal.jobs.models import Job, JobEvent
    from ops_portal.jobs.streams import event_payload

    @sync_to_async
    def make():
        user, environment, _, cookie = viewer_of.func("zeta")
        job = Job.objects.create(name="log", environment=environment, action="host.command", plan_hash="0" * 64,
                                 state="running", last_seq=2)
        JobEvent.objects.bulk_create(JobEvent(job=job, seq=n, time=timezone.now(), kind="output", target=0,
                                              stream="stdout", text=f"line {n}") for n in (1, 2))
        return job, cookie

    @sync_to_async
    def store(seqs, publish):
        events = [JobEvent.objects.create(job=job, seq=n, time=timezone.now(), kind="output", target=0,
                                          stream="stdout", text=f"line {n}") for n in seqs]
        if publish:
            streams.publish_many(groups.job(job.pk), [event_payload(e) for e in events])
        return events

    job, cookie = await make()
    comm, seqs, take = await follow_job(cookie, job)

    await receive_until(comm, take(2), timeout=10)
    missed = await store(range(3, 6), publish=False)  # stored, but their batch never reached the socket
    await store(range(6, 9), publish=True)
    await receive_until(comm, take(8), timeout=10)
    assert seqs == list(range(1, 9))
    # The missed batch turns up late after all: nothing is sent twice; later batches flow on.
    await sync_to_async(streams.publish_many)(groups.job(job.pk), [event_payload(e) for e in missed])
    await store(range(9, 10), publish=True)
    await receive_until(comm, take(9), timeout=10)
    assert seqs == list(range(1, 10))
    await comm.disconnect()


async def test_while_events_flow_the_authority_check_is_renewed_before_a_flush_must_wait_for_it(monkeypatch):
    """Every socket's check falls due at the same moment when they connected together, and the
    checks queue on daphne's one database thread: a flush that had to wait for its own check held
    the live log back by hundreds of ms (p99 at 20 clients). Events flowing renew the check in the
    background first; the check a flush asks for is then always fresh."""
    from ops_portal.core import consumers
    from ops_portal.jobs import groups
    from ops_portal.jobs.models import Job

    monkeypatch.setattr(consumers, "AUTH_RECHECK_SECONDS", 2.0)
    monkeypatch.setattr(consumers, "AUTH_RENEW_SECONDS", 0.5)
    checks = []
    original = consumers.StreamConsumer._check

    async def recording(self, max_age):
        checks.append(max_age)
        return await original(self, max_age)

    monkeypatch.setattr(consumers.StreamConsumer, "_check", recording)

    @sync_to_async
    def make():
        user, environment, _, cookie = viewer_of.func("eta")
        job = Job.objects.create(name="log", environment=environment, action="host.command", plan_hash="0" * 64,
                                 state="running")
        return job, cookie

    job, cookie = await make()
    comm, seqs, until = await follow_job(cookie, job)

    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < 3.5:
        seq += 1
        payload = {"seq": seq, "kind": "output", "time": time.time(), "text": f"line {seq}"}
        await sync_to_async(streams.publish_many)(groups.job(job.pk), [payload])
        await receive_until(comm, until(seq), timeout=10)
        await asyncio.sleep(0.05)
    assert seqs == list(range(1, seq + 1))
    renewals = [age for age in checks if age == consumers.AUTH_RENEW_SECONDS]
    assert len(renewals) >= 2, checks  # renewed about every 0.5 s while events flowed
    assert consumers.AUTH_RECHECK_SECONDS not in checks, checks  # no flush ever had to check for itself
    await comm.disconnect()


async def test_sends_not_waited_for_arrive_in_the_order_they_were_asked_for():
    """A launch's and a claim's summaries go out without waiting (wait=False); a group still gets
    every event of a process in the order it was published, waited for or not."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    group = "test.unwaited-order"
    channel = await layer.new_channel()
    await layer.group_add(group, channel)

    def publish_all():
        for n in range(30):
            streams.publish_to([group], {"n": n}, wait=n % 3 == 0)
        streams._sender.drain(5)

    await sync_to_async(publish_all)()
    received = [(await asyncio.wait_for(layer.receive(channel), 5))["payload"]["n"] for _ in range(30)]
    assert received == list(range(30))


def test_a_send_not_waited_for_returns_before_redis_has_it(monkeypatch):
    import threading

    release, sent = threading.Event(), []

    async def slow_send(items):
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        sent.extend(message["payload"] for _, message in items)

    monkeypatch.setattr(streams, "_send_all", slow_send)
    streams.publish_to(["test.unwaited-slow"], {"n": 1}, wait=False)
    assert sent == []  # the caller went on while the send waits
    release.set()
    streams._sender.drain(5)
    assert sent == [{"n": 1}]


def test_a_batch_is_encoded_once_as_the_same_json_the_standard_library_reads():
    import json

    payloads = [{"seq": 1, "kind": "output", "time": 1764770000.123456, "text": "naïve – \u2028 \"q\" \\ done"},
                {"seq": 2, "kind": "target", "time": 1764770000.5, "text": "h1", "target": 0, "data": {1: "int key"}},
                {"seq": 3, "kind": "info", "time": 1.0, "text": "big", "data": {"n": 2**70}}]
    message = streams.batch_message("job.1", payloads)
    assert json.loads(message["raw"]) == json.loads(json.dumps(payloads))
    assert (message["count"], message["first"], message["last"]) == (3, 1, 3)
    small = streams.encode(payloads[:2])
    assert "naïve" in small  # UTF-8, not \u escapes (orjson)
    assert json.loads(small) == json.loads(json.dumps(payloads[:2]))
