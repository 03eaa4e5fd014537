"""`python -m bench sampling`: the minute's container sampling job against `docker stats` (issue 13).

On the local engine, `--containers` containers of the fleet's web image run (health checks off);
the engine's rows are synced into the bench database and narrowed to them. Then, per repeat and
in the same run:

- the portal: one `engine.container_stats` job (what "containers: sample running containers"
  launches every minute) on a Celery worker of the bench, `--parallel` containers at a time, timed
  from launch until the job ended and its samples were stored;
- the bare backend: schedulers.container.containers.stats over the same containers with the same
  parallelism (no job, no database);
- the peer: `docker stats --no-stream` with the same containers named (the CLI samples them all
  at once).

Results: var/bench/sampling-<run id>.json.
"""
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from . import runtime
from .runtime import fmt, median

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_sampling"
REDIS_PREFIX = "opsportal-bench-sampling"


def add_arguments(parser):
    parser.add_argument("--containers", type=int, default=50, help="running containers sampled (50)")
    parser.add_argument("--parallel", type=int, default=100, help="containers sampled at a time (100, the default)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each variant (3)")


def start_containers(client, image, prefix, count):
    def start(i):
        created = client.api.create_container(image, name=f"{prefix}-s{i:03d}", healthcheck={"test": ["NONE"]},
                                              labels={"opsportal.bench": runtime.RUN_ID})
        client.api.start(created["Id"])
        return created["Id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(start, range(count)))


def remove_containers(client, ids):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda cid: client.api.remove_container(cid, force=True, v=True), ids))


def portal_engine(environment, client, prefix):
    """The local engine in the bench database, tied to a local host, with only our containers."""
    from ops_portal.containers import sync
    from ops_portal.containers.models import Container, Engine
    from ops_portal.inventory.choices import Transport
    from ops_portal.inventory.models import Host
    from schedulers.container import inventory

    host = Host.objects.create(environment=environment, name=f"{environment.name}-machine", transport=Transport.LOCAL,
                               address="127.0.0.1")
    engine = Engine.objects.create(environment=environment, name="local", url="unix:///var/run/docker.sock",
                                   host=host)
    sync.resync(engine.pk, inventory.snapshot(client, detail=False))
    Container.objects.filter(engine=engine).exclude(name__startswith=prefix).delete()
    return engine


def portal_pass(actor, environment, engine, parallel, count):
    from ops_portal.jobs.launch import launch_adhoc
    from ops_portal.monitoring.choices import CONTAINER_STATS_ACTION
    from ops_portal.monitoring.models import Sample

    before = Sample.objects.filter(series__host_id=engine.host_id, series__metric="ctr_cpu_percent").count()
    started = time.perf_counter()
    job = launch_adhoc(actor, environment=environment, action=CONTAINER_STATS_ACTION,
                       values={"parallel": parallel, "max_containers": max(count, 1)},
                       selector={"kind": "engine", "ids": [str(engine.pk)]}, predefined=True)
    job = runtime.wait_job(job.pk, timeout=600, interval=0.02)
    wall = time.perf_counter() - started
    data = job.targets.get().data
    stored = Sample.objects.filter(series__host_id=engine.host_id, series__metric="ctr_cpu_percent").count() - before
    if job.state != "succeeded" or data.get("sampled") != count or stored != count:
        raise RuntimeError(f"job {job.pk} {job.state}: {data}, {stored} CPU samples stored of {count}")
    return wall


def backend_pass(client, ids, parallel):
    from schedulers.container import containers

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        samples = list(pool.map(lambda cid: containers.stats(client, cid), ids))
    assert all(s.running for s in samples)
    return time.perf_counter() - started


def cli_pass(ids):
    started = time.perf_counter()
    proc = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.ID}} {{.CPUPerc}}", *ids],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or len(proc.stdout.splitlines()) != len(ids):
        raise RuntimeError(f"docker stats failed: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def main(args):
    import fleet
    from schedulers.container import EngineSpec, connect

    runtime.DATABASE_URL = runtime.PORTAL_ENV["DATABASE_URL"] = DATABASE_URL
    runtime.REDIS_PREFIX = runtime.PORTAL_ENV["REDIS_PREFIX"] = REDIS_PREFIX
    fleet.ensure_engine()
    built = fleet.ensure_images()
    runtime.setup_django()
    results = {"machine": runtime.machine(), "args": vars(args) | {"func": None}}
    client = connect(EngineSpec("local", "unix:///var/run/docker.sock"), timeout=300)
    runtime.cleanup.push("engine client", client.close)
    prefix = f"{runtime.NAME_PREFIX}{runtime.RUN_ID}"
    image = f"{prefix}-web:bench"
    client.images.get(built["web:v1"]).tag(image)
    runtime.cleanup.push(f"tag {image}", client.api.remove_image, image)
    ids = start_containers(client, image, prefix, args.containers)
    runtime.cleanup.push(f"containers {prefix}-*", remove_containers, client, ids)
    actor, _, environment = runtime.bench_user()
    engine = portal_engine(environment, client, prefix)
    worker = runtime.start_worker()
    runtime.cleanup.push("worker", worker.stop)
    results["load_average_start"] = runtime.load_average()
    times = {"portal job": [], "bare backend": [], "docker stats --no-stream": []}
    print(f"{args.containers} running containers, {args.parallel} at a time")
    for repeat in range(1, args.repeats + 1):
        times["portal job"].append(portal_pass(actor, environment, engine, args.parallel, args.containers))
        times["bare backend"].append(backend_pass(client, ids, args.parallel))
        times["docker stats --no-stream"].append(cli_pass(ids))
        print(f"  repeat {repeat}: " + ", ".join(f"{label} {fmt(values[-1])} s" for label, values in times.items())
              + f"  (load {runtime.load_average()[0]})")
    results["times"] = times
    cli = median(times["docker stats --no-stream"])
    results["summary"] = [{"what": label, "median_s": median(values), "ratio_to_cli": median(values) / cli,
                           "ms_per_container": median(values) * 1000 / args.containers}
                          for label, values in times.items()]
    results["load_average_end"] = runtime.load_average()
    print(f"\nmedians of {args.repeats} (ratio to docker stats --no-stream)")
    for row in results["summary"]:
        print(f"  {row['what']:26} {fmt(row['median_s'])} s  {fmt(row['ms_per_container'], 1)} ms a container  "
              f"x{fmt(row['ratio_to_cli'])}")
    print(f"load {results['load_average_start']} → {results['load_average_end']}")
    print(f"results: {runtime.save_results('sampling', results)}")
