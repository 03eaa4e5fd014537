"""`python -m bench states`: a state alert rule over tens of thousands of containers (issue 13).

In a database of its own (`bench_states`): one engine with `--containers` container rows, a
`container_not_running` rule, and `--channels` webhook channels subscribed to alerts (deliveries
are stored and queued; no worker runs, so nothing is sent). Then, per repeat: `--down` containers
exit and one evaluation pass fires their alerts, a pass with nothing new, and a pass after they all
run again resolves them. Timed: wall and this process's CPU per pass, queries, and per alert.
No peer: other tools keep no alert per container in a database.
Results: var/bench/states-<run id>.json.
"""
import datetime
import time

from . import runtime
from .runtime import fmt, median

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_states"
REDIS_PREFIX = "opsportal-bench-states"


def add_arguments(parser):
    parser.add_argument("--containers", type=int, default=50000, help="container rows (50,000)")
    parser.add_argument("--down", type=int, default=5000, help="containers that exit in each repeat (5,000)")
    parser.add_argument("--channels", type=int, default=1, help="webhook channels subscribed to alerts (1)")
    parser.add_argument("--repeats", type=int, default=3, help="outages measured (3)")


def make_containers(environment, count):
    from ops_portal.containers.models import Container, Engine

    engine = Engine.objects.create(environment=environment, name="bench", url="unix:///var/run/docker.sock")
    Container.objects.bulk_create([
        Container(engine=engine, docker_id=f"{i:064x}", name=f"box-{i:05d}", state="running", image="web:v1")
        for i in range(count)], batch_size=5000)
    return engine


def make_channels(actor, environment, count):
    from ops_portal.notifications import services as notifications

    for i in range(count):
        notifications.create_channel(actor, name=f"hook-{i}", environment=environment, kind="webhook",
                                     url=f"http://127.0.0.1:9/hook-{i}", events=["alert.firing", "alert.resolved"])


def remove_channels(environment_id):
    from ops_portal.notifications.models import Delivery, NotificationChannel

    Delivery.objects.filter(channel__environment_id=environment_id).delete()
    NotificationChannel.objects.filter(environment_id=environment_id).delete()


def timed_pass(environment, now):
    from django.db import connection

    from ops_portal.monitoring.evaluation import evaluate

    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    cpu, wall = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(count):
        outcome = evaluate(environment_id=environment.pk, now=now)
    return {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3),
            "queries": queries[0], **outcome}


def main(args):
    runtime.DATABASE_URL = runtime.PORTAL_ENV["DATABASE_URL"] = DATABASE_URL
    runtime.REDIS_PREFIX = runtime.PORTAL_ENV["REDIS_PREFIX"] = REDIS_PREFIX
    results = {"machine": runtime.machine(), "args": vars(args) | {"func": None}}
    runtime.setup_django()
    from ops_portal.containers.models import Container
    from ops_portal.monitoring import services as monitoring
    from ops_portal.monitoring.models import Alert

    actor, _, environment = runtime.bench_user()
    engine = make_containers(environment, args.containers)
    make_channels(actor, environment, args.channels)
    runtime.cleanup.push("bench channels", remove_channels, environment.pk)  # they protect the environment
    monitoring.create_rule(actor, environment=environment, name="down", kind="container_not_running")
    results["load_average_start"] = runtime.load_average()
    runs = []
    print(f"{'repeat':>6} {'pass':>8} {'alerts':>7} {'wall s':>7} {'CPU s':>6} {'queries':>7} {'ms/alert':>9}")
    now = int(time.time())
    for repeat in range(1, args.repeats + 1):
        down = list(Container.objects.filter(engine=engine).order_by("pk").values_list("pk", flat=True)[:args.down])
        finished = datetime.datetime.fromtimestamp(now - 60, datetime.UTC)
        Container.objects.filter(pk__in=down).update(state="exited", exit_code=137, finished_at=finished)
        passes = {"fire": timed_pass(environment, now), "steady": timed_pass(environment, now + 1)}
        Container.objects.filter(pk__in=down).update(state="running", started_at=finished + datetime.timedelta(30))
        passes["resolve"] = timed_pass(environment, now + 2)
        now += 10
        assert passes["fire"]["fired"] == passes["resolve"]["resolved"] == args.down, passes
        assert Alert.objects.filter(environment=environment, state="firing").count() == 0
        for name, run in passes.items():
            alerts = run["fired"] + run["resolved"]
            run["ms_per_alert"] = round(run["wall_s"] * 1000 / alerts, 3) if alerts else None
            print(f"{repeat:>6} {name:>8} {alerts:>7} {fmt(run['wall_s'], 2):>7} {fmt(run['cpu_s'], 2):>6} "
                  f"{run['queries']:>7} {fmt(run['ms_per_alert'], 2) if alerts else '-':>9}")
        runs.append(passes)
    results["runs"] = runs
    results["median"] = {name: {key: median([r[name][key] for r in runs]) for key in ("wall_s", "cpu_s", "queries")}
                         for name in ("fire", "steady", "resolve")}
    results["load_average_end"] = runtime.load_average()
    m = results["median"]
    print(f"\nmedians of {len(runs)} outages of {args.down:,} of {args.containers:,} containers, {args.channels} "
          f"channel(s): fire {fmt(m['fire']['wall_s'], 2)} s ({fmt(m['fire']['wall_s'] * 1000 / args.down, 2)} ms "
          f"an alert), steady {fmt(m['steady']['wall_s'], 2)} s, resolve {fmt(m['resolve']['wall_s'], 2)} s "
          f"({fmt(m['resolve']['wall_s'] * 1000 / args.down, 2)} ms an alert); "
          f"load {results['load_average_start']} → {results['load_average_end']}")
    print(f"results: {runtime.save_results('states', results)}")
