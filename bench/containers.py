"""`python -m bench containers`: the container level against the docker CLI (issue 11).

On the local engine in Swarm mode, with the fleet's offline images, in the same run:

- scale a service 1 -> 20 replicas until converged: schedulers.container (services.scale +
  wait_converged) vs `docker service scale --detach=false`. The CLI waits the update monitor
  period (5 s) after convergence to check the tasks stay up; the backend is timed with the same
  wait (stable_for=None, the default) and without it (stable_for=0);
- a rolling update of 10 replicas (parallelism 1, delay 0, stop-first, as the CLI's defaults):
  services.update(image=…) + wait_converged vs `docker service update --image … --detach=false`,
  alternating web:v1 and web:v2;
- an inventory snapshot with 200 containers: inventory.containers without and with detail,
  snapshot() of every kind, against docker-py's containers.list(sparse=False) and `docker ps -a`.

Services publish in host mode with DNS round robin (no IPVS here). Everything is named
bench-<run id>-… and removed on exit. The portal path (REST API -> job -> worker -> engine, the
resync into the database, docker stop -> websocket) is in containers_portal.py and runs first
(--skip-portal leaves it out, --skip-backend runs only it). Results: var/bench/containers-<run id>.json.
"""
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from . import runtime
from .runtime import fmt, median


def add_arguments(parser):
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each timed step (3)")
    parser.add_argument("--replicas", type=int, default=20, help="scale 1 -> this many (20)")
    parser.add_argument("--update-replicas", type=int, default=10, help="replicas of the rolling update (10)")
    parser.add_argument("--containers", type=int, default=200, help="containers in the snapshot (200)")
    parser.add_argument("--snapshot-repeats", type=int, default=7, help="repeats of each snapshot variant (7)")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-update", action="store_true")
    parser.add_argument("--skip-snapshot", action="store_true")
    parser.add_argument("--skip-backend", action="store_true", help="only the portal path (and its CLI peers)")
    parser.add_argument("--skip-portal", action="store_true", help="only the backend (no Django, no processes)")
    parser.add_argument("--skip-stops", action="store_true")
    parser.add_argument("--stops", type=int, default=30, help="containers stopped for docker stop -> websocket (30)")
    parser.add_argument("--update-repeats", type=int, default=2, help="repeats of the portal's rolling update (2)")


def _cli(*args, timeout=600):
    started = time.monotonic()
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return time.monotonic() - started


def _settle(client, service_id, count, timeout=120):
    """Wait until the service has exactly `count` containers (scaled-down tasks are gone)."""
    deadline = time.monotonic() + timeout
    label = {"label": f"com.docker.swarm.service.id={service_id}"}
    while len(client.api.containers(all=True, filters=label)) != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"service {service_id} did not settle at {count} containers")
        time.sleep(0.2)


def _remove_prefixed(client, prefix):
    import docker

    for service in client.api.services():
        if service["Spec"]["Name"].startswith(prefix):
            client.api.remove_service(service["ID"])

    def remove(row):
        try:
            client.api.remove_container(row["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass  # a removed service's task container, gone meanwhile

    rows = [c for c in client.api.containers(all=True) if any(n.lstrip("/").startswith(prefix) for n in c["Names"])]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(remove, rows))


def _service_spec(name, image, replicas):
    from schedulers.container import PortSpec, ServiceSpec, UpdatePolicy

    return ServiceSpec(name=name, image=image, replicas=replicas, endpoint_mode="dnsrr",
                       ports=[PortSpec(8080, mode="host")],
                       update_config=UpdatePolicy(parallelism=1, delay=0, order="stop-first", failure_action="pause"))


def bench_scale(client, images, prefix, args):
    from schedulers.container import services, wait_converged

    name = f"{prefix}-scale"
    change = services.create(client, _service_spec(name, images["web:v1"], 1))
    assert wait_converged(client, change, stable_for=0, timeout=120).ok
    sid = change.service_id
    n = args.replicas

    def down():
        assert wait_converged(client, services.scale(client, sid, 1), stable_for=0, timeout=120).ok
        _settle(client, sid, 1)

    def backend(stable_for):
        def run():
            started = time.monotonic()
            result = wait_converged(client, services.scale(client, sid, n), stable_for=stable_for, timeout=300)
            if not result.ok:
                raise RuntimeError(result.message)
            return time.monotonic() - started
        return run

    contenders = [("backend (CLI's 5 s check)", backend(None)), ("backend (no stability wait)", backend(0)),
                  ("docker service scale", lambda: _cli("service", "scale", "--detach=false", f"{name}={n}"))]
    return _rotate(contenders, down, args.repeats, f"scale 1 -> {n}")


def bench_update(client, images, prefix, args):
    from schedulers.container import services, wait_converged

    name = f"{prefix}-update"
    n = args.update_replicas
    change = services.create(client, _service_spec(name, images["web:v1"], n))
    assert wait_converged(client, change, stable_for=0, timeout=300).ok
    sid = change.service_id
    state = {"image": images["web:v1"]}

    def flip():
        state["image"] = images["web:v2"] if state["image"] == images["web:v1"] else images["web:v1"]
        return state["image"]

    def backend():
        started = time.monotonic()
        result = wait_converged(client, services.update(client, sid, image=flip()), timeout=600)
        if not result.ok:
            raise RuntimeError(result.message)
        return time.monotonic() - started

    contenders = [("backend update+converge", backend),
                  ("docker service update --image", lambda: _cli("service", "update", "--detach=false", "--image",
                                                                 flip(), name))]
    return _rotate(contenders, lambda: None, args.repeats, f"rolling update of {n} replicas")


def _rotate(contenders, between, repeats, title):
    times = {label: [] for label, _ in contenders}
    print(f"\n{title}, {repeats} repeats (order rotated)")
    for repeat in range(repeats):
        order = contenders[repeat % len(contenders):] + contenders[:repeat % len(contenders)]
        for label, run in order:
            between()
            seconds = run()
            times[label].append(seconds)
            print(f"  repeat {repeat + 1}: {label:32} {fmt(seconds)} s  (load {runtime.load_average()[0]})")
    return times


def bench_snapshot(client, images, prefix, args):
    import docker

    from schedulers.container import inventory

    count = args.containers
    print(f"\nstarting {count} containers (web:v1, health check off to spare the engine)…")
    started = time.monotonic()

    def start(i):
        created = client.api.create_container(images["web:v1"], name=f"{prefix}-c{i:03d}",
                                              labels={"opsportal.bench": runtime.RUN_ID},
                                              healthcheck={"test": ["NONE"]})
        client.api.start(created["Id"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start, range(count)))
    print(f"  {count} containers running after {fmt(time.monotonic() - started, 1)} s")
    total = len(client.api.containers(all=True))
    sdk = docker.from_env(timeout=300)
    runtime.cleanup.push("docker-py client", sdk.close)
    variants = [
        ("inventory.containers(detail=False)", lambda: inventory.containers(client, detail=False)),
        ("inventory.containers(detail=True)", lambda: inventory.containers(client, detail=True)),
        ("snapshot() all kinds, detail=False", lambda: inventory.snapshot(client, detail=False)),
        ("docker-py list(sparse=False)", lambda: sdk.containers.list(all=True, sparse=False)),
        ("docker ps -a", lambda: _cli("ps", "-a", "--no-trunc")),
    ]
    times = {label: [] for label, _ in variants}
    for _ in range(args.snapshot_repeats):
        for label, run in variants:
            t = time.monotonic()
            run()
            times[label].append(time.monotonic() - t)
    print(f"snapshot of {total} containers, {args.snapshot_repeats} repeats each")
    for label, values in times.items():
        print(f"  {label:38} median {fmt(median(values), 3)} s  (min {fmt(min(values), 3)}, "
              f"max {fmt(max(values), 3)})")
    return {"containers": total, "times": times}


def main(args):
    import fleet
    from schedulers.container import EngineSpec, connect

    runtime.take_lock()
    info = runtime.machine()
    fleet.ensure_engine()
    built = fleet.ensure_images()
    client = connect(EngineSpec("local", "unix:///var/run/docker.sock"), timeout=300)
    runtime.cleanup.push("engine client", client.close)
    prefix = f"{runtime.NAME_PREFIX}{runtime.RUN_ID}"
    # Tags of our own: a build of another recipe on this engine untags the hash tags mid-run.
    images = {}
    for key in ("web:v1", "web:v2"):
        images[key] = f"{prefix}-{key.replace(':', '-')}:bench"
        client.images.get(built[key]).tag(images[key])
        runtime.cleanup.push(f"tag {images[key]}", client.api.remove_image, images[key])
    runtime.cleanup.push(f"services and containers {prefix}-*", _remove_prefixed, client, prefix)
    results = {"machine": info, "engine": client.server_version.get("Version"), "prefix": prefix}
    summary = []
    if not args.skip_portal:
        from . import containers_portal

        portal_results, portal_summary = containers_portal.run(args, images, prefix)
        results.update(portal_results)
        summary += portal_summary
    if args.skip_backend:
        args.skip_scale = args.skip_update = args.skip_snapshot = True
    if not args.skip_scale:
        times = bench_scale(client, images, prefix, args)
        results["scale"] = times
        cli = median(times["docker service scale"])
        for label in ("backend (CLI's 5 s check)", "backend (no stability wait)"):
            summary.append((f"scale 1 -> {args.replicas}: {label}", median(times[label]), cli))
        summary.append((f"scale 1 -> {args.replicas}: docker service scale --detach=false", cli, cli))
    if not args.skip_update:
        times = bench_update(client, images, prefix, args)
        results["update"] = times
        cli = median(times["docker service update --image"])
        summary.append((f"rolling update x{args.update_replicas}: backend", median(times["backend update+converge"]),
                        cli))
        summary.append((f"rolling update x{args.update_replicas}: docker service update", cli, cli))
    if not args.skip_snapshot:
        results["snapshot"] = bench_snapshot(client, images, prefix, args)
    print("\nmedians (ratio to the docker CLI)")
    for label, value, peer in summary:
        print(f"  {label:58} {fmt(value)} s  x{fmt(value / peer)}")
    results["summary"] = [{"what": label, "median_s": value, "ratio_to_cli": value / peer}
                          for label, value, peer in summary]
    results["load_average_end"] = runtime.load_average()
    print(f"\nresults: {runtime.save_results('containers', results)}")
