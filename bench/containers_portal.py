"""The portal path of `python -m bench containers` (issue 11): the same work through the REST API, a
Celery worker, the jobs engine and the container watcher, against the docker CLI in the same run.

- scale 1 -> 20 through the API: POST /api/services/{id}/scale/ until the job finished (it
  succeeds only once the service converged, after the same 5 s stability check as the CLI) vs
  `docker service scale --detach=false`;
- a rolling update of 10 replicas: POST /api/services/{id}/update/ {"image": …} vs
  `docker service update --detach=false --image …`, alternating web:v1 and web:v2;
- an inventory resync of 200 containers into the database (sync.resync from a snapshot: the
  first one inserts, the next ones upsert), and the snapshot plus resync end to end;
- `docker stop` outside the portal to a websocket client seeing the container exited (through
  the watcher, the database and Channels): median and p99, from the moment the CLI returned and
  from the moment it started.

Everything runs on the bench database; the engine row is the local socket in the bench's own
environment; services and containers are named bench-<run id>-… and removed on exit.
"""
import json
import subprocess
import sys
import threading
import time

from . import runtime
from .runtime import fmt, median, percentile


def _cli(*args, timeout=900):
    started = time.monotonic()
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return time.monotonic() - started


class Portal:
    """The bench's portal: web, worker and watcher processes, an API session, the engine row."""

    def __init__(self, key, environment):
        import requests

        from ops_portal.containers import engines
        from ops_portal.containers.models import Engine

        self.web = runtime.start_web()
        self.worker = runtime.start_worker(2)
        self.watcher = runtime.Process("watcher", [str(runtime.BIN / "python"), "manage.py", "container_watcher",
                                                   "--poll", "1"])
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {key}"
        self.key = key
        Engine.objects.filter(url="unix:///var/run/docker.sock").delete()  # a crashed run's row
        self.engine = Engine.objects.create(environment=environment, name=f"{runtime.NAME_PREFIX}{runtime.RUN_ID}",
                                            url="unix:///var/run/docker.sock")
        engines.check(self.engine)
        runtime.wait_for(lambda: Engine.objects.filter(pk=self.engine.pk, last_sync__isnull=False).exists(), 120,
                         "the watcher's first resync", self.watcher)

    def post(self, path, body):
        response = self.session.post(self.web.url + path, json=body, timeout=60)
        if response.status_code != 201:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def job(self, path, body, timeout=900):
        """POST an action, then poll the job over the API until it finished; seconds from the POST."""
        started = time.monotonic()
        job = self.post(path, body)
        while True:
            state = self.session.get(f"{self.web.url}/api/jobs/{job['id']}/", timeout=30).json()["state"]
            if state in ("succeeded", "failed", "canceled", "timed_out", "lost"):
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"job {job['id']} still {state} after {timeout}s")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        if state != "succeeded":
            detail = self.session.get(f"{self.web.url}/api/jobs/{job['id']}/", timeout=30).json()
            raise RuntimeError(f"job {job['id']} {state}: {detail.get('error')}")
        return seconds

    def service(self, name, timeout=60):
        from ops_portal.containers.models import Service

        runtime.wait_for(lambda: Service.objects.filter(engine=self.engine, name=name).exists(), timeout,
                         f"service {name} in the inventory")
        return Service.objects.get(engine=self.engine, name=name)


def _create(portal, name, image, replicas):
    spec = {"name": name, "image": image, "replicas": replicas, "ports": [{"target": 8080, "mode": "host"}],
            "endpoint_mode": "dnsrr",
            "update_config": {"parallelism": 1, "delay": 0, "order": "stop-first", "failure_action": "pause"}}
    portal.job("/api/services/", {"engine": portal.engine.pk, "spec": spec})
    return portal.service(name)


def _rotate(contenders, between, repeats, title):
    times = {label: [] for label, _ in contenders}
    print(f"\n{title}, {repeats} repeats (order rotated)")
    for repeat in range(repeats):
        order = contenders[repeat % len(contenders):] + contenders[:repeat % len(contenders)]
        for label, run in order:
            between()
            seconds = run()
            times[label].append(seconds)
            print(f"  repeat {repeat + 1}: {label:40} {fmt(seconds)} s  (load {runtime.load_average()[0]})")
    return times


def bench_scale(portal, images, prefix, args):
    name = f"{prefix}-pscale"
    service = _create(portal, name, images["web:v1"], 1)
    n = args.replicas

    def down():
        portal.job(f"/api/services/{service.pk}/scale/", {"replicas": 1})
        _settle(service.service_id, 1)

    contenders = [("portal API scale (job to converged)",
                   lambda: portal.job(f"/api/services/{service.pk}/scale/", {"replicas": n})),
                  ("docker service scale --detach=false", lambda: _cli("service", "scale", "--detach=false",
                                                                       f"{name}={n}"))]
    return _rotate(contenders, down, args.repeats, f"portal: scale 1 -> {n}")


def _settle(service_id, count, timeout=180):
    label = f"label=com.docker.swarm.service.id={service_id}"
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True).stdout
        if len(out.split()) == count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"service {service_id} did not settle at {count} containers")
        time.sleep(0.2)


def bench_update(portal, images, prefix, args):
    name = f"{prefix}-pupdate"
    n = args.update_replicas
    service = _create(portal, name, images["web:v1"], n)
    state = {"image": images["web:v1"]}

    def flip():
        state["image"] = images["web:v2"] if state["image"] == images["web:v1"] else images["web:v1"]
        return state["image"]

    contenders = [("portal API update (job to completed)",
                   lambda: portal.job(f"/api/services/{service.pk}/update/", {"image": flip()})),
                  ("docker service update --image", lambda: _cli("service", "update", "--detach=false", "--image",
                                                                 flip(), name))]
    return _rotate(contenders, lambda: None, args.update_repeats, f"portal: rolling update of {n} replicas")


def _start_containers(image, prefix, count, tag):
    from concurrent.futures import ThreadPoolExecutor

    def start(i):
        subprocess.run(["docker", "run", "-d", "--name", f"{prefix}-{tag}{i:03d}", "--label",
                        f"opsportal.bench={runtime.RUN_ID}", "--no-healthcheck", image], check=True,
                       capture_output=True)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start, range(count)))


def bench_resync(portal, images, prefix, args):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ops_portal.containers import sync
    from ops_portal.containers.models import Container
    from schedulers import container as backend

    count = args.containers
    print(f"\nstarting {count} containers…")
    _start_containers(images["web:v1"], prefix, count, "r")
    client = backend.connect(backend.EngineSpec("bench", "unix:///var/run/docker.sock"), timeout=300)
    runtime.cleanup.push("resync client", client.close)
    portal.watcher.stop()  # the resync alone, not racing the watcher's own writes
    total = len(client.api.containers(all=True))
    first_snap = backend.snapshot(client)
    Container.objects.filter(engine=portal.engine).delete()
    times = {"first resync (inserts)": [], "resync (upserts)": [], "snapshot + resync": [], "queries": []}
    started = time.monotonic()
    sync.resync(portal.engine.pk, first_snap)
    times["first resync (inserts)"].append(time.monotonic() - started)
    for _ in range(args.snapshot_repeats):
        snap = backend.snapshot(client)
        with CaptureQueriesContext(connection) as queries:
            started = time.monotonic()
            sync.resync(portal.engine.pk, snap)
            times["resync (upserts)"].append(time.monotonic() - started)
        times["queries"].append(len(queries.captured_queries))
        started = time.monotonic()
        sync.resync(portal.engine.pk, backend.snapshot(client))
        times["snapshot + resync"].append(time.monotonic() - started)
    print(f"resync of {total} containers into the database ({Container.objects.filter(engine=portal.engine).count()} "
          f"rows), {args.snapshot_repeats} repeats")
    for label in ("first resync (inserts)", "resync (upserts)", "snapshot + resync"):
        values = times[label]
        print(f"  {label:28} median {fmt(median(values), 3)} s  (max {fmt(max(values), 3)})")
    print(f"  queries per resync: {sorted(set(times['queries']))}")
    portal.watcher = runtime.Process("watcher2", [str(runtime.BIN / "python"), "manage.py", "container_watcher",
                                                  "--poll", "1"], extra_env={"LOG_LEVEL": "INFO"})
    return {"containers": total, "times": times}


def bench_stop_to_websocket(portal, images, prefix, args):
    from websockets.sync.client import connect

    from ops_portal.containers.models import Container

    count = args.stops
    print(f"\ndocker stop -> websocket, {count} containers")
    _start_containers(images["web:v1"], prefix, count, "s")
    names = [f"{prefix}-s{i:03d}" for i in range(count)]
    try:
        runtime.wait_for(lambda: Container.objects.filter(engine=portal.engine, name__in=names,
                                                          state="running").count() == count, 120,
                         "the containers in the inventory", portal.watcher)
    except RuntimeError:
        from ops_portal.containers.models import Engine

        print(list(Container.objects.filter(engine=portal.engine, name__in=names).values_list("name", "state")))
        print(Engine.objects.filter(pk=portal.engine.pk).values("state", "error", "last_sync", "last_seen").first())
        print(portal.watcher.tail(40))
        raise
    ids = dict(Container.objects.filter(engine=portal.engine, name__in=names).values_list("name", "pk"))
    seen, lock = {}, threading.Lock()
    ws = connect(portal.web.ws_url, additional_headers={"Authorization": f"Token {portal.key}"})
    runtime.cleanup.push("websocket", ws.close)
    json.loads(ws.recv(10))
    ws.send(json.dumps({"action": "subscribe", "id": "c", "stream": "containers", "params": {}}))
    assert json.loads(ws.recv(10))["type"] == "subscribed"

    def read():
        try:
            while True:
                message = json.loads(ws.recv())
                now = time.monotonic()
                for item in message.get("items", []):
                    if item.get("kind") == "container" and item.get("state") == "exited":
                        with lock:
                            seen.setdefault(item["id"], now)
        except Exception:  # the socket closed at the end
            return

    threading.Thread(target=read, daemon=True).start()
    from_return, from_start = [], []
    for name in names:
        started = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "2", name], check=True, capture_output=True)
        returned = time.monotonic()
        deadline = returned + 10
        while ids[name] not in seen and time.monotonic() < deadline:
            time.sleep(0.005)
        if ids[name] not in seen:
            raise RuntimeError(f"{name}: no exited event on the websocket within 10 s")
        from_return.append(seen[ids[name]] - returned)
        from_start.append(seen[ids[name]] - started)
    ws.close()
    for label, values in (("after docker stop returned", from_return), ("after docker stop started", from_start)):
        print(f"  {label:30} median {fmt(median(values), 3)} s  p99 {fmt(percentile(values, 99), 3)} s  "
              f"max {fmt(max(values), 3)} s")
    return {"after_return": from_return, "after_start": from_start}


def run(args, images, prefix):
    """The portal benches; returns (results, summary rows)."""
    took = runtime.setup_django()
    print(f"bench database ready in {fmt(took, 1)} s")
    _, key, environment = runtime.bench_user()
    portal = Portal(key, environment)
    results, summary = {}, []
    if not args.skip_scale:
        times = bench_scale(portal, images, prefix, args)
        results["portal_scale"] = times
        cli = median(times["docker service scale --detach=false"])
        summary += [(f"portal: scale 1 -> {args.replicas} through the API", median(
            times["portal API scale (job to converged)"]), cli),
                    (f"portal: scale 1 -> {args.replicas}: docker service scale", cli, cli)]
    if not args.skip_update:
        times = bench_update(portal, images, prefix, args)
        results["portal_update"] = times
        cli = median(times["docker service update --image"])
        summary += [(f"portal: rolling update x{args.update_replicas} through the API",
                     median(times["portal API update (job to completed)"]), cli),
                    (f"portal: rolling update x{args.update_replicas}: docker service update", cli, cli)]
    if not args.skip_snapshot:
        results["portal_resync"] = bench_resync(portal, images, prefix, args)
    if not args.skip_stops:
        results["stop_to_websocket"] = bench_stop_to_websocket(portal, images, prefix, args)
    sys.stdout.flush()
    return results, summary
