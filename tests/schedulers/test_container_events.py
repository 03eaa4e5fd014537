"""The event watcher against the real engine: changes made outside the portal arrive within 2 s,
and the watcher survives its engine socket going away (a proxy the test stops and starts; the
shared dockerd is never restarted)."""
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from schedulers.base import CancelToken
from schedulers.container import EngineSpec, Event, EventWatcher, map_event
from tests.helpers import wait_until
from tests.schedulers.container_rigs import SocketProxy

pytestmark = pytest.mark.fleet


class Recorder:
    def __init__(self):
        self.events, self.resyncs, self.lock = [], [], threading.Lock()

    def on_event(self, event, client):
        with self.lock:
            self.events.append((time.monotonic(), event))

    def on_resync(self, client, reason):
        client.ping()  # the client handed over is connected
        with self.lock:
            self.resyncs.append((time.monotonic(), reason))

    def first(self, kind, actor, action, after=0.0):
        with self.lock:
            return next(((t, e) for t, e in self.events
                         if t >= after and e.kind == kind and e.id == actor and e.action == action), None)


@pytest.fixture
def recorder():
    return Recorder()


def _watch(spec, recorder, **options):
    options = {"ping_every": 1.0, "backoff_initial": 0.1, "backoff_max": 0.5, **options}
    return EventWatcher(spec, recorder.on_event, recorder.on_resync, CancelToken(), **options).start()


def test_sees_containers_started_and_killed_outside_within_two_seconds(local_engine_spec, docker_client,
                                                                       ct_images, prefix, recorder):
    watcher = _watch(local_engine_spec, recorder)
    try:
        wait_until(lambda: recorder.resyncs, 10, what="first resync")
        assert recorder.resyncs[0][1] == "connect" and watcher.connected
        started = time.monotonic()
        container = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-ev", detach=True)
        seen_at, event = wait_until(lambda: recorder.first("container", container.id, "start", started), 2.0,
                                  what="start event")
        assert seen_at - started < 2.0 and event.name == f"{prefix}-ev"

        killed = time.monotonic()
        subprocess.run(["docker", "kill", container.id], check=True, capture_output=True)
        seen_at, event = wait_until(lambda: recorder.first("container", container.id, "die", killed), 2.0,
                                  what="die event")
        assert seen_at - killed < 2.0
        assert event.attributes["exitCode"] == "137"
        assert watcher.heartbeat > time.time() - 2
    finally:
        watcher.stop()
        watcher.join(5)
    assert not watcher._thread.is_alive()


class Reference:
    """Every event of the engine as a second, plain stream of docker-py's delivers it."""

    def __init__(self, client):
        self.raw, self.stream = [], client.api.events(decode=True)
        threading.Thread(target=lambda: [self.raw.append(r) for r in self.stream], daemon=True).start()

    def of(self, ids):
        return [(r.get("timeNano"), r.get("Action")) for r in self.raw if (r.get("Actor") or {}).get("ID") in ids]


def _start_and_kill_at_once(client, image, names):
    def create(name):
        return client.api.create_container(image, name=name, healthcheck={"test": ["NONE"]})["Id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, names))
        list(pool.map(client.api.start, ids))
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(client.api.kill, ids))
    return set(ids)


def test_hands_over_every_event_of_concurrent_operations_whatever_the_order_of_their_times(
        local_engine_spec, docker_client, ct_images, prefix, recorder):
    """The engine stamps an event before it serialises it, so concurrent operations deliver times out
    of order. The watcher used to drop every event older than the newest one seen: a container's
    `die` a millisecond older than another's `kill` was lost, and the inventory kept it running."""
    reference = Reference(docker_client)
    watcher = _watch(local_engine_spec, recorder)
    inverted = 0
    try:
        wait_until(lambda: recorder.resyncs, 10, what="first resync")
        for round_ in range(3):  # until the engine's times came out of order at least once
            ids = _start_and_kill_at_once(docker_client, ct_images["web:v1"],
                                          [f"{prefix}-r{round_}-{i}" for i in range(16)])
            wait_until(lambda ids=ids: [a for _, a in reference.of(ids)].count("die") == len(ids), 20,
                       what="every die on the reference stream")
            expected = sorted((int(t), a) for t, a in reference.of(ids))

            def handed(ids=ids):
                return sorted((e.time_nano, e.action) for _, e in list(recorder.events) if e.id in ids)

            wait_until(lambda expected=expected, handed=handed: handed() == expected, 5,
                       what=f"the watcher handing over all {len(expected)} events (has {len(handed())})")
            times = [int(r["timeNano"]) for r in reference.raw if r.get("timeNano")]
            inverted += sum(1 for a, b in zip(times, times[1:], strict=False) if b < a)
            if inverted:
                break
        assert inverted, "the engine delivered its event times in order in every round: nothing was tested"
        assert watcher.repeats == 0 and watcher.connects == 1
    finally:
        reference.stream.close()
        watcher.stop()
        watcher.join(5)


def test_drops_only_exact_repeats_never_an_event_for_being_older(local_engine_spec):
    watcher = EventWatcher(local_engine_spec, None, None)

    def event(nano, action, actor="a"):
        return Event(kind="container", id=actor, action=action, time_nano=nano)

    assert watcher._fresh(event(2_000, "kill", "b"))
    assert watcher._fresh(event(1_999, "die", "a"))  # older than the newest seen: still new
    assert not watcher._fresh(event(2_000, "kill", "b"))  # what a replay repeats
    assert watcher._fresh(event(2_000, "kill", "a"))
    assert (watcher.events, watcher.repeats, watcher._newest_nano) == (3, 1, 2_000)


def test_survives_the_engine_socket_going_away_and_resyncs(tmp_path, docker_client, ct_images, prefix,
                                                           recorder):
    proxy = SocketProxy(unix_path=str(tmp_path / "engine.sock")).start()
    watcher = _watch(EngineSpec("proxied", proxy.url), recorder)
    try:
        wait_until(lambda: recorder.resyncs, 10, what="first resync")
        proxy.stop()  # every connection dropped and the socket file gone, as when dockerd stops
        wait_until(lambda: not watcher.connected, 5, what="the watcher noticing")
        assert "no Docker socket" in wait_until(lambda: watcher.last_error, 5) or "ended" in watcher.last_error
        time.sleep(1.5)  # a few reconnect attempts fail meanwhile
        assert watcher.failures >= 2
        lost_at = time.monotonic()
        proxy.start()
        wait_until(lambda: [r for t, r in recorder.resyncs if t > lost_at], 5, what="resync after reconnect")
        assert [r for _, r in recorder.resyncs] == ["connect", "reconnect"]
        assert watcher.connected and watcher.failures == 0

        started = time.monotonic()
        container = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-after", detach=True)
        wait_until(lambda: recorder.first("container", container.id, "start", started), 2.0,
                 what="an event after the reconnect")
    finally:
        watcher.stop()
        watcher.join(5)
        proxy.stop()


def test_replays_events_missed_during_a_short_outage(tmp_path, docker_client, ct_images, prefix, recorder):
    proxy = SocketProxy(unix_path=str(tmp_path / "engine.sock")).start()
    watcher = _watch(EngineSpec("proxied", proxy.url), recorder)
    try:
        wait_until(lambda: recorder.resyncs, 10, what="first resync")
        docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-before", detach=True)
        wait_until(lambda: any(e.name == f"{prefix}-before" for _, e in recorder.events), 2.0)
        proxy.stop()
        wait_until(lambda: not watcher.connected, 5)
        missed = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-missed", detach=True)
        proxy.start()
        wait_until(lambda: recorder.first("container", missed.id, "start"), 5.0, what="the missed start, replayed")
        before = [e for _, e in recorder.events if e.name == f"{prefix}-before" and e.action == "start"]
        assert len(before) == 1  # the replay did not repeat what was seen before the outage
    finally:
        watcher.stop()
        watcher.join(5)
        proxy.stop()


def test_a_failing_callback_does_not_stop_the_watcher(local_engine_spec, docker_client, ct_images, prefix):
    seen = []

    def on_event(event, client):
        seen.append(event)
        raise RuntimeError("consumer bug")

    watcher = EventWatcher(local_engine_spec, on_event, lambda client, reason: None, CancelToken()).start()
    try:
        time.sleep(0.5)
        container = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-cb", detach=True)
        container.stop(timeout=1)
        wait_until(lambda: [e for e in seen if e.id == container.id and e.action == "stop"], 5)
        assert watcher.callback_errors >= 2 and watcher.connected
    finally:
        watcher.stop()
        watcher.join(5)


def test_maps_raw_events():
    event = map_event({"Type": "container", "Action": "health_status: unhealthy", "scope": "local",
                       "Actor": {"ID": "abc", "Attributes": {"name": "web.1", "image": "x"}},
                       "time": 1700000000, "timeNano": 1700000000123456789})
    assert (event.kind, event.id, event.action, event.detail, event.name) == \
        ("container", "abc", "health_status", "unhealthy", "web.1")
    assert event.time_nano == 1700000000123456789
    exec_event = map_event({"Type": "container", "Action": "exec_start: sh -c echo hi", "Actor": {"ID": "abc"}})
    assert (exec_event.action, exec_event.detail) == ("exec_start", "sh -c echo hi")
    service = map_event({"Type": "service", "Action": "update",
                         "Actor": {"ID": "s1", "Attributes": {"name": "web", "replicas.new": "3"}}})
    assert (service.kind, service.action, service.attributes["replicas.new"]) == ("service", "update", "3")


def test_backoff_doubles_and_is_capped(local_engine_spec):
    watcher = EventWatcher(local_engine_spec, None, None, backoff_initial=0.5, backoff_max=8)
    delays = [watcher.backoff(n) for n in range(1, 10)]
    assert 0.4 <= delays[0] <= 0.6 and 0.8 <= delays[1] <= 1.2
    assert all(d <= 8 * 1.2 for d in delays) and delays[-1] >= 8 * 0.8
