"""The container watcher process against real engines: a container changed outside the portal shows
in the database and on a websocket within 2 s; engines added or removed are picked up; a private
second dockerd that is stopped and started again is reconnected and resynced (the shared dockerd,
which carries everyone's fleet, is never restarted); its heartbeat is in /readyz."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from websockets.sync.client import connect

from ops_portal.accounts.choices import Role
from ops_portal.containers.models import Container, Engine
from ops_portal.core import heartbeat
from ops_portal.core.health import run_checks
from tests.containers.helpers import engine as make_engine
from tests.containers.helpers import person, synced
from tests.helpers import wait_until
from tests.live import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


def token_for(user):
    from ops_portal.accounts import services
    from ops_portal.core.context import Actor

    return services.create_token(Actor.for_user(user, source="api"), name="ws")[1]


def test_a_container_killed_outside_the_portal_shows_exited_within_two_seconds(
        env, docker_client, ct_images, prefix, watcher, live_web):
    row = make_engine(env)
    wait_for(lambda: synced(row.pk), 60, "the first resync", watcher)
    created = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-kill", detach=True)
    wait_for(lambda: Container.objects.filter(engine=row, docker_id=created.id, state="running").exists(),
             10, "the new container from its events", watcher)
    stored = Container.objects.get(engine=row, docker_id=created.id)
    viewer = person(env, Role.VIEWER)
    ws_url = live_web.url.replace("http://", "ws://") + "/ws/"
    with connect(ws_url, additional_headers={"Authorization": f"Token {token_for(viewer)}"}) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        ws.send(json.dumps({"action": "subscribe", "id": "c", "stream": "containers", "params": {}}))
        assert json.loads(ws.recv(10))["type"] == "subscribed"
        ws.send(json.dumps({"action": "subscribe", "id": "o", "stream": "container_object",
                            "params": {"kind": "container", "id": stored.pk}}))
        assert json.loads(ws.recv(10))["type"] == "subscribed"
        started = time.monotonic()
        subprocess.run(["docker", "kill", created.id], check=True, capture_output=True)
        seen = set()
        while seen != {"c", "o"}:
            try:
                message = json.loads(ws.recv(max(0.1, 2.0 - (time.monotonic() - started))))
            except TimeoutError:
                state = Container.objects.get(pk=stored.pk).state
                raise AssertionError(f"the kill reached subscriptions {seen or 'none'} within 2 s (stored: {state})")
            if any(item.get("id") == stored.pk and item.get("state") == "exited" for item in message["items"]):
                seen.add(message["id"])
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    after = Container.objects.get(pk=stored.pk)
    assert after.state == "exited" and after.exit_code == 137


def test_engines_added_and_removed_are_picked_up_and_a_missing_socket_is_down_in_plain_words(
        env, tmp_path, watcher, live_env):
    missing = make_engine(env, name="gone", url=f"unix://{tmp_path}/nothing.sock")
    wait_for(lambda: Engine.objects.get(pk=missing.pk).state == "down", 15, "the missing engine marked down",
             watcher)
    error = Engine.objects.get(pk=missing.pk).error
    assert "no Docker socket at" in error and "Traceback" not in error
    local = make_engine(env)
    wait_for(lambda: synced(local.pk) and Engine.objects.get(pk=local.pk).state == "ok", 30,
             "the added engine resynced", watcher)
    assert Engine.objects.get(pk=local.pk).version
    Engine.objects.filter(pk=local.pk).update(enabled=False)
    time.sleep(2)
    marker = Engine.objects.get(pk=local.pk).last_sync
    Container.objects.filter(engine=local).delete()
    time.sleep(3)  # a disabled engine is no longer followed: nothing writes its rows
    assert Engine.objects.get(pk=local.pk).last_sync == marker and not Container.objects.filter(engine=local).exists()
    # /readyz: enabled engines and a live watcher are ready; with the watcher gone, not.
    assert run_checks(["watcher"])["watcher"]["ok"] is True
    watcher.stop(signal.SIGTERM)
    wait_for(lambda: not heartbeat.alive("watcher"), 10, "the watcher's heartbeat to go")
    assert run_checks(["watcher"])["watcher"]["ok"] is False


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread killed on purpose
def test_a_dead_or_stuck_event_stream_is_not_ready_and_is_watched_again(env, docker_client, ct_images, prefix):
    """The process alive is not enough: a stream thread that ended or stopped turning takes the
    heartbeat (and so /readyz) down and is replaced; the new one follows the engine's events."""
    from ops_portal.containers.watcher import Supervisor
    from ops_portal.containers.watcher import name as watcher_name

    row = make_engine(env)
    supervisor = Supervisor(poll=0.2, stalled_after=15)  # one event takes seconds on a loaded machine
    release = threading.Event()
    try:
        supervisor.reconcile()
        wait_until(lambda: synced(row.pk), 60, what="the first resync")
        assert supervisor.beat() == {}
        ready = run_checks(["watcher"])["watcher"]
        assert ready["ok"] is True and ready["streams"][watcher_name()][str(row.pk)]["connected"] is True

        # A thread that dies silently: what is not an Exception passes the watcher's guards.
        first = supervisor.watches[row.pk]

        def die(event, client):
            raise SystemExit("the stream thread dies")

        first.watcher.on_event = die
        docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-wake", detach=True)
        wait_until(lambda: not first.watcher._thread.is_alive(), 10, what="the stream thread to end")
        problems = supervisor.beat()
        assert "event stream thread ended" in problems[row.pk]
        assert run_checks(["watcher"])["watcher"]["ok"] is False  # at once, not after the TTL

        synced_before = Engine.objects.get(pk=row.pk).last_sync
        supervisor.replace(problems)
        second = supervisor.watches[row.pk]
        assert second is not first and supervisor.restarts == {row.pk: 1}
        wait_until(lambda: synced(row.pk, synced_before), 60, what="the new watch's resync")
        assert supervisor.beat() == {} and run_checks(["watcher"])["watcher"]["ok"] is True
        created = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-after", detach=True)
        wait_until(lambda: Container.objects.filter(engine=row, docker_id=created.id, state="running").exists(),
                   30, what="events followed again")

        # A callback that never returns: the loop stops turning.
        second.watcher.on_event = lambda event, client: release.wait(60)
        subprocess.run(["docker", "kill", created.id], check=True, capture_output=True)
        wait_until(lambda: "stuck" in supervisor.problems().get(row.pk, ""), 40, what="the stuck stream noticed")
        assert supervisor.beat() and run_checks(["watcher"])["watcher"]["ok"] is False
    finally:
        release.set()
        supervisor.stop_all()


class PrivateDockerd:
    """A second dockerd of the test's own: its own socket, data root, exec root (and containerd) and
    its own bridge interface; it leaves iptables alone. Stopped and started like a machine's engine
    restart.

    Never `--bridge none`: dockerd then deletes the host's docker0, which the shared engine uses."""

    def __init__(self, root, bridge):
        self.root, self.bridge = root, bridge
        self.socket = f"{root}/docker.sock"
        self.url = f"unix://{self.socket}"
        self.process = None
        self.log = None

    def start(self):
        args = ["dockerd", "--host", self.url, "--data-root", f"{self.root}/data", "--exec-root",
                f"{self.root}/exec", "--pidfile", f"{self.root}/docker.pid", "--bridge", self.bridge,
                "--iptables=false", "--ip6tables=false", "--ip-masq=false"]
        self.log = open(f"{self.root}/dockerd.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.answers, 60, "the private dockerd")
        return self

    def answers(self):
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                                env={**os.environ, "DOCKER_HOST": self.url}, timeout=10)
        return result.returncode == 0

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


@pytest.fixture
def private_dockerd(tmp_path_factory):
    import random

    root = tmp_path_factory.mktemp("dockerd")
    os.chmod(root, 0o700)
    bridge = f"ctd{os.getpid() % 100000}"
    subnet = f"10.231.{random.randint(1, 250)}.1/24"
    for command in (["ip", "link", "add", "name", bridge, "type", "bridge"],
                    ["ip", "addr", "add", subnet, "dev", bridge], ["ip", "link", "set", bridge, "up"]):
        subprocess.run(command, check=True, capture_output=True)
    engine = PrivateDockerd(str(root), bridge)
    try:
        yield engine.start()
    finally:
        engine.stop()
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_the_watcher_survives_its_engine_restarting(env, docker_client, ct_images, private_dockerd, watcher):
    import docker

    other = docker.DockerClient(base_url=private_dockerd.url)
    try:
        other.images.load(b"".join(docker_client.api.get_image(ct_images["web:v1"])))  # saved under this tag
        created = other.containers.run(ct_images["web:v1"], name="survivor", detach=True, network_mode="none")
    finally:
        other.close()
    row = make_engine(env, name="private", url=private_dockerd.url)
    wait_for(lambda: Container.objects.filter(engine=row, docker_id=created.id, state="running").exists(), 30,
             "the private engine's container", watcher)
    first_sync = Engine.objects.get(pk=row.pk).last_sync
    private_dockerd.stop()
    wait_for(lambda: Engine.objects.get(pk=row.pk).state == "down", 20, "the stopped engine marked down", watcher)
    assert Engine.objects.get(pk=row.pk).error  # in plain words: what the backend's explain() said
    Container.objects.filter(engine=row).update(state="running", status="stale")
    private_dockerd.start()
    # Reconnected: a full resync shows what happened meanwhile (no live-restore: the container exited).
    wait_for(lambda: synced(row.pk, first_sync) and Engine.objects.get(pk=row.pk).state == "ok", 60,
             "the reconnect and resync", watcher)
    wait_for(lambda: Container.objects.get(engine=row, docker_id=created.id).state == "exited", 10,
             "the container's state after the restart", watcher)
    assert watcher.alive() and heartbeat.alive("watcher")
    assert "Traceback" not in watcher.tail(400)
