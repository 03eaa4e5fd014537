"""`python -m bench launch`: what launching a job of thousands of targets costs the caller (issue 15).

In a database of its own (`bench_launch`): `--targets` SSH hosts (one credential, a pinned host key
each; 2 KB of facts each, as a real inventory has), then `--repeats` launches of `host.command` on all
of them through `jobs.launch.launch_adhoc` (the API's and the page's path), each rolled back: the
caller's wall time and this process's CPU time (the plan: selecting the targets, their fingerprints,
the job and target rows, the audit row), and the queries of one launch. No worker runs: nothing is
queued (the transaction is rolled back). No peer: other tools have no plan to store.
Results: var/bench/launch-<run id>.json.
"""
import time

from . import runtime
from .runtime import fmt, median

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_launch"
REDIS_PREFIX = "opsportal-bench-launch"


def add_arguments(parser):
    parser.add_argument("--targets", type=int, default=5000, help="hosts in the job (5,000)")
    parser.add_argument("--repeats", type=int, default=5, help="launches measured (5)")


def make_hosts(actor, environment, count):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from ops_portal.inventory import services as inventory
    from ops_portal.inventory.models import Host

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    credential = inventory.create_credential(actor, name=f"{runtime.NAME_PREFIX}{runtime.RUN_ID}",
                                             environment=environment, username="root", private_key=private)
    facts = {"os": {"id": "debian", "version": "12"}, "packages": [f"pkg-{i}" for i in range(200)]}
    Host.objects.bulk_create([
        Host(name=f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-h{i:05d}", address="127.0.0.1", port=20000 + i % 40000,
             username="root", environment=environment, credential=credential, host_key=public, facts=facts)
        for i in range(count)], batch_size=1000)


def main(args):
    # A database and Redis namespace of its own, so it runs beside the other benchmarks.
    runtime.DATABASE_URL = runtime.PORTAL_ENV["DATABASE_URL"] = DATABASE_URL
    runtime.REDIS_PREFIX = runtime.PORTAL_ENV["REDIS_PREFIX"] = REDIS_PREFIX
    results = {"machine": runtime.machine(), "args": vars(args) | {"func": None}}
    runtime.setup_django()
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from ops_portal.jobs.launch import launch_adhoc

    actor, _, environment = runtime.bench_user()
    make_hosts(actor, environment, args.targets)
    results["load_average_start"] = runtime.load_average()
    runs = []
    print(f"{'launch':>6} {'wall s':>7} {'CPU s':>6} {'queries':>7}")
    for repeat in range(args.repeats + 1):  # the first warms the caches (the actor's authority) and is not kept
        cpu, wall = time.process_time(), time.perf_counter()
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            job = launch_adhoc(actor, environment=environment, action="host.command", values={"command": "uname -a"},
                               selector={"all": True}, strategy={"kind": "parallel", "limit": 50})
            assert job.targets.count() == args.targets
            transaction.set_rollback(True)
        run = {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3),
               "queries": len(queries.captured_queries)}
        if repeat:
            runs.append(run)
            print(f"{repeat:>6} {fmt(run['wall_s'], 2):>7} {fmt(run['cpu_s'], 2):>6} {run['queries']:>7}")
    results["runs"] = runs
    results["median"] = {key: median([r[key] for r in runs]) for key in ("wall_s", "cpu_s", "queries")}
    results["load_average_end"] = runtime.load_average()
    m = results["median"]
    print(f"\nmedian of {len(runs)} launches of {args.targets:,} targets: {fmt(m['wall_s'], 2)} s wall, "
          f"{fmt(m['cpu_s'], 2)} s CPU ({fmt(m['cpu_s'] * 1000 / args.targets, 3)} ms a target), "
          f"{m['queries']} queries; load {results['load_average_start']} → {results['load_average_end']}")
    print(f"results: {runtime.save_results('launch', results)}")
