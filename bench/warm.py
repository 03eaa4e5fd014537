"""`python -m bench warm`: a second job on the same hosts over warm SSH connections (issue 15, item 9).

On one fleet (sshd containers on 127.0.0.1), in the same run, repeated:

- the cold floor: schedulers.host.SSHPool + run_command `uname -a` on N threads, a new pool without
  warm connections (handshakes included), as in `bench hosts`;
- the warm floor: the same on a pool that ran the command once on every host first (no handshakes
  in the timed pass): what is left once handshakes are gone, before any job machinery;
- portal cold: host.command `uname -a` (parallel, limit N) after every worker's warm connections
  were closed (the revocation a credential rotation sends);
- portal warm: the same job again at once, served the connections the cold job left;
- the peer: `ansible all -m raw -a 'uname -a' -f N` with ansible's default ssh arguments
  (ControlMaster=auto, ControlPersist=60s), run twice on one ControlPath directory: the second is
  the warm one.

Portal jobs are timed from the launch call until the job's end as the database recorded it (its
`finished`, written after every per-host result was stored), looked up every 50 ms (polling every
10 ms, as before 2026-12-03, was load enough to slow the job it timed). The worker runs
with --concurrency 1 by default: warm connections belong to one worker process, and a prefork
worker hands a job to any of its children (see docs/OPERATIONS.md). Handshakes are counted from
the hosts' side (sshd's "Accepted publickey" lines) to show the warm job made none.
"""
import shutil
import tempfile
import time
from pathlib import Path

from . import runtime
from .hosts import Prepared, end_control_masters, fabric_pool_run, portal_run
from .runtime import fmt, median


def add_arguments(parser):
    parser.add_argument("--hosts", type=int, default=50, help="fleet hosts (50)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (3)")
    parser.add_argument("--concurrency", type=int, default=1, help="Celery worker concurrency (1)")
    parser.add_argument("--skip-ansible", action="store_true", help="do not run the ansible peer")


def handshakes(docker_client, fleet_run):
    """Public-key logins sshd logged so far on every host of the fleet (from the hosts' own logs)."""
    total = 0
    for host in fleet_run.hosts:
        logs = docker_client.containers.get(host.container_id).logs(stdout=True, stderr=True)
        total += logs.count(b"Accepted publickey for")
    return total


def close_warm(fingerprint):
    """Close every worker's warm connections of the bench credential (as a rotation does)."""
    from ops_portal.inventory import warm

    warm.publish(fingerprint=fingerprint)
    time.sleep(1.0)  # the worker's listener closes them; the hosts see the connections end


def ansible_twice(ansible, forks, expected):
    """-m raw twice on one ControlPath directory: (cold, warm) results."""
    import os
    import subprocess

    control = Path(tempfile.mkdtemp(prefix="cp-", dir=ansible.workdir))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ansible.config), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
           "ANSIBLE_HOME": str(ansible.workdir / "home"), "ANSIBLE_LOCAL_TEMP": str(ansible.workdir / "tmp"),
           "ANSIBLE_NOCOLOR": "1"}
    runs = []
    try:
        for _ in range(2):
            load = runtime.load_average()
            started = time.perf_counter()
            proc = subprocess.run([str(runtime.BIN / "ansible"), "all", "-i", str(ansible.inventory), "-m", "raw",
                                   "-a", "uname -a", "-f", str(forks), "-o"], capture_output=True, text=True,
                                  cwd=ansible.workdir, env=env, timeout=900)
            seconds = time.perf_counter() - started
            ok = sum(1 for line in proc.stdout.splitlines() if " | CHANGED" in line and "Linux" in line)
            if proc.returncode or ok != expected:
                print(f"  ansible -m raw: exit {proc.returncode}, {ok} ok; {proc.stderr.strip()[-300:]}")
            runs.append({"seconds": seconds, "ok": ok, "load": load})
    finally:
        end_control_masters(control)
        shutil.rmtree(control, ignore_errors=True)
    return runs


def main(args):
    import docker

    n = args.hosts
    prepared = Prepared(args, n, suffix="w", warm=True, ansible_modules=("raw",))
    from ops_portal.inventory import warm
    from ops_portal.inventory.models import Credential

    actor, environment, info, notes = prepared.actor, prepared.environment, prepared.info, prepared.notes
    ansible_version, fleet_run, names = prepared.ansible_version, prepared.fleet, prepared.names
    worker, targets, ansible = prepared.worker, prepared.targets, prepared.ansible
    fingerprint = warm.fingerprint_of(Credential.objects.get(name=f"{runtime.NAME_PREFIX}{fleet_run.run_id}"))
    engine = docker.from_env()

    results = {label: [] for label in ("floor", "warm floor", "portal cold", "portal warm", "ansible raw cold",
                                       "ansible raw warm")}
    warm_handshakes = []
    print(f"\n'uname -a' on {n} hosts, {args.repeats} repeats (parallelism {n}, worker concurrency "
          f"{args.concurrency})")
    for repeat in range(args.repeats):
        results["floor"].append(fabric_pool_run(targets, n))
        results["warm floor"].append(fabric_pool_run(targets, n, warm=True))
        close_warm(fingerprint)
        results["portal cold"].append(portal_run(actor, environment, names, n, worker))
        before = handshakes(engine, fleet_run)
        results["portal warm"].append(portal_run(actor, environment, names, n, worker))
        warm_handshakes.append(handshakes(engine, fleet_run) - before)
        if ansible:
            cold, hot = ansible_twice(ansible, n, n)
            results["ansible raw cold"].append(cold)
            results["ansible raw warm"].append(hot)
        line = ", ".join(f"{label} {fmt(runs[-1]['seconds'])} s" for label, runs in results.items() if runs)
        print(f"  repeat {repeat + 1}: {line}; handshakes during the warm job: {warm_handshakes[-1]} "
              f"(load {runtime.load_average()})")

    medians = {label: median([r["seconds"] for r in runs]) for label, runs in results.items() if runs}
    print(f"\nmedians over {args.repeats} repeats, {n} hosts:")
    for label, value in medians.items():
        ok = min(r["ok"] for r in results[label])
        print(f"  {label:18} {fmt(value)} s ({fmt(value / n * 1000, 1)} ms/host), all ok: {ok == n}")
    print(f"  portal warm / cold floor: {fmt(medians['portal warm'] / medians['floor'])}x; "
          f"portal warm / portal cold: {fmt(medians['portal warm'] / medians['portal cold'])}x; "
          f"portal warm / warm floor: {fmt(medians['portal warm'] / medians['warm floor'])}x")
    if "ansible raw warm" in medians:
        print(f"  portal warm / ansible raw warm (ControlPersist): "
              f"{fmt(medians['portal warm'] / medians['ansible raw warm'])}x")
    for label in ("portal cold", "portal warm"):
        phases = {key: median([r["phases_ms"][key] for r in results[label] if r["phases_ms"][key] is not None])
                  for key in results[label][0]["phases_ms"]}
        launch = median([r["launch_call_s"] * 1000 for r in results[label]])
        print(f"  {label}, medians in ms: launch call {fmt(launch, 0)}, created->claimed {fmt(phases['to_claim'], 0)}, "
              f"claimed->first target {fmt(phases['to_first_target'], 0)}, targets {fmt(phases['targets'], 0)}, "
              f"last target->job end {fmt(phases['to_end'], 0)}")
    print(f"  handshakes during the warm jobs: {warm_handshakes}; load average at the end "
          f"{runtime.load_average()}")
    runtime.save_results("warm", {"machine": info, "hosts": n, "repeats": args.repeats, "concurrency": args.concurrency,
                          "ansible": ansible_version, "results": results, "medians": medians,
                          "warm_handshakes": warm_handshakes, "notes": notes})
