"""Two web replicas behind the load balancer, deployed with docker-compose from the images built here:
one address for both, sessions, CSRF and the sign-in throttle shared, and a websocket on replica A
receives every event of a job launched through replica B's API (the Redis channel layer).

The replicas are also published on ports of their own on 127.0.0.1 (tests/deploy/compose.replicas.yml,
for the tests only), so the test can address each directly. `make deploy-check` runs it with the
other deployment tests.
"""
import json
import os
import random
import re
import time

import pytest
from websockets.sync.client import connect

from tests.deploy import deployment as d
from tests.deploy.portal_client import Portal

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]

JOB = "for i in $(seq 1 30); do echo line-$i; sleep 0.1; done"


def _get(portal, path):
    return portal.request("GET", path)[0]


def _receive(ws, predicate, timeout=120):
    """Messages until predicate(message) is true; every message read, in order."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; received: {seen[-20:]}"
        message = json.loads(ws.recv(remaining))
        seen.append(message)
        if predicate(message):
            return seen


@pytest.fixture
def deployment(images):
    d.need("docker")
    d.need("docker-compose")
    ports = {"lb": d.free_port(), "web1": d.free_port(), "web2": d.free_port()}
    net = random.randrange(16, 250)  # a network of its own: another run's may hold the default subnet
    env = d.settings(images, WEB_PORT=str(ports["lb"]), WEB1_PORT=str(ports["web1"]), WEB2_PORT=str(ports["web2"]),
                     PORTAL_URL=f"http://127.0.0.1:{ports['lb']}", PORTAL_SUBNET=f"10.214.{net}.0/24",
                     LB_ADDRESS=f"10.214.{net}.250")
    compose = d.Compose(f"opsportal-replicas-{os.getpid()}", env, d.ROOT / "tests" / "deploy" / "compose.replicas.yml")
    try:
        healthy_after = compose.up()
        yield {"ports": ports, "container": compose.container, "healthy_after": healthy_after, "env": env}
    finally:
        compose.down("-v", "--timeout", "30")


def test_two_replicas_behind_the_lb_share_sessions_throttle_and_every_jobs_events(deployment, capsys):
    ports, container = deployment["ports"], deployment["container"]
    lb, a, b = (f"http://127.0.0.1:{ports[name]}" for name in ("lb", "web1", "web2"))
    published = d.run(["docker", "port", container("lb"), "8000/tcp"]).stdout.split()
    assert published == [f"127.0.0.1:{ports['lb']}"]  # loopback only

    # The replicas started together; the migration lock let one migrate and the other wait.
    logs = [d.run(["docker", "logs", container(name)]).stdout for name in ("web1", "web2")]
    assert sum("Applying " in log for log in logs) == 1, [log[-2000:] for log in logs]
    assert sum("No migrations to apply." in log for log in logs) == 1, [log[-2000:] for log in logs]

    user, password = d.bootstrap(container("web1"))

    # Through the lb: the sign-in's GET and POST and the API calls go round robin to both replicas.
    through_lb = Portal(lb)
    through_lb.sign_in(user, password)
    for _ in range(6):
        assert _get(through_lb, "/api/jobs/") == 200
    lb_log = d.run(["docker", "logs", container("lb")]).stdout + d.run(["docker", "logs", container("lb")]).stderr
    servers = set(re.findall(r" portal web/(web\d+) [-\d]+/", lb_log))  # its request log lines
    assert len(servers) == 2, lb_log[-3000:]

    # A session made on replica A works on replica B (sessions in the database), and B accepts A's
    # CSRF token for a write: the API token for the rest of the test is made there.
    portal = Portal(a)
    portal.sign_in(user, password)
    portal.base = b  # cookies are the host's, whatever the port: the same session cookie goes to B
    assert _get(portal, "/api/jobs/") == 200
    assert _get(Portal(b), "/api/jobs/") in (401, 403)  # and without it B refuses
    token = portal.create_token("replicas")

    # A websocket on replica A, subscribed before the job exists, sees the job launched through B's
    # API, and then every event of its stream, in order, to the end.
    headers = {"Authorization": f"Token {token}"}
    with connect(a.replace("http://", "ws://") + "/ws/", additional_headers=headers, open_timeout=30) as ws:
        assert json.loads(ws.recv(30))["type"] == "hello"
        ws.send(json.dumps({"action": "subscribe", "id": "l", "stream": "jobs"}))
        _receive(ws, lambda m: m["type"] == "subscribed" and m["id"] == "l", 30)
        on_b = Portal(b)
        on_b.token = token
        job_id = on_b.launch("development", JOB)["id"]
        ws.send(json.dumps({"action": "subscribe", "id": "j", "stream": "job", "params": {"job": job_id}}))
        seqs, texts, listed = [], [], set()

        def note(message):
            """Record the job's events and its states in the jobs list; true at its last event."""
            if message["type"] != "events":
                return False
            if message["id"] == "l":
                listed.update(i["state"] for i in message["items"] if i["id"] == job_id)
                return False
            seqs.extend(i["seq"] for i in message["items"])
            texts.extend(i.get("text") for i in message["items"])
            return any((i.get("data") or {}).get("state") == "succeeded" for i in message["items"])

        _receive(ws, note, 180)
        if "succeeded" not in listed:
            _receive(ws, lambda m: note(m) or "succeeded" in listed, 60)
    job, output = on_b.job(job_id)
    assert job["state"] == "succeeded", job
    assert seqs == list(range(1, job["last_seq"] + 1))  # every event, none twice, none missing
    assert [f"line-{i}" for i in range(1, 31)] == [t for t in texts if t and t.startswith("line-")]
    assert "line-30" in output

    # The sign-in throttle counts in Redis: failures on A and on B add up, and then the right
    # password is refused on either (LOGIN_THROTTLE_ATTEMPTS, 5 by default).
    for attempt in range(5):
        guess = Portal(a if attempt % 2 else b)
        guess.request("GET", "/login/")
        status, body, _ = guess.request("POST", "/login/", {
            "username": user, "password": "wrong-password", "csrfmiddlewaretoken": guess._cookie("csrftoken")},
            form=True)
        assert "Too many failed sign-ins" not in body
    for base in (a, b):
        late = Portal(base)
        late.request("GET", "/login/")
        status, body, url = late.request("POST", "/login/", {
            "username": user, "password": password, "csrfmiddlewaretoken": late._cookie("csrftoken")}, form=True)
        assert "Too many failed sign-ins" in body and not late._cookie("sessionid"), (base, status, url)
    with capsys.disabled():
        print(f"\nreplicas: 8 containers healthy {deployment['healthy_after']:.0f}s after up")
