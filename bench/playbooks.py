"""`python -m bench playbooks`: a one-task playbook on fleet hosts, the portal vs ansible-playbook (issue 14).

On one fleet (sshd containers on 127.0.0.1), in the same run, repeated in rotated order:

- portal: ansible.playbook of a directory project (synced once before), launched with the service
  layer (strategy parallel, limit = forks), timed from the launch call until the job has ended
  (every target stored);
- peer: `ansible-playbook -i INVENTORY -f FORKS one.yml` alone, on the very inventory, key files,
  known_hosts and environment the portal writes for a run (schedulers.ansible.write_inventory and
  its settings: no ControlMaster, strict host keys), from the same checkout.

The ratio portal / peer is the overhead of the portal around Ansible (launch, queue, claim, events
into the database, target rows); the goal of issue 14 is at most 1.2x.
"""
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import runtime
from .hosts import bring_up, register
from .runtime import fmt, median

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: uname\n      command: uname -a\n"


def add_arguments(parser):
    parser.add_argument("--hosts", type=int, default=20, help="fleet hosts (20)")
    parser.add_argument("--forks", type=int, default=20, help="Ansible forks, the portal's limit too (20)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (3)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency (2)")


def portal_run(actor, environment, names, forks):
    from ops_portal.jobs.launch import launch_adhoc
    load = runtime.load_average()
    started = time.perf_counter()
    job = launch_adhoc(actor, environment=environment, action="ansible.playbook",
                       values={"project": "bench", "playbook": "one.yml"}, selector={"names": names},
                       strategy={"kind": "parallel", "limit": forks}, name=f"bench playbook x{len(names)}")
    job = runtime.wait_job(job.pk, timeout=900, interval=0.02)
    seconds = time.perf_counter() - started
    state = job.state
    ok = job.targets.filter(state="ok").count()
    if state != "succeeded":
        print(f"  portal job {job.pk} {state}: {list(job.targets.exclude(state='ok').values_list('error')[:3])}")
    return {"seconds": seconds, "ok": ok, "state": state, "job": job.pk, "load": load}


def peer_run(checkout, inventory_dir, inventory, forks, env, n):
    load = runtime.load_average()
    started = time.perf_counter()
    proc = subprocess.run([str(runtime.BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks), "one.yml"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    ok = sum(1 for line in proc.stdout.splitlines() if " ok=1 " in line and " failed=0 " in line)
    if proc.returncode != 0 or ok != n:
        print(f"  ansible-playbook: exit {proc.returncode}, {ok}/{n} ok; {proc.stdout.strip()[-300:]}")
    return {"seconds": seconds, "ok": ok, "exit": proc.returncode, "load": load}


def main(args):
    import fleet

    runtime.setup_django()
    from ops_portal.projects import services as projects
    from schedulers import ansible

    actor, _, environment = runtime.bench_user()
    info = runtime.machine()
    notes = []
    fleet.ensure_engine()
    fleet.ensure_images()
    n, forks = args.hosts, args.forks
    print(f"bringing up {n} fleet hosts (load average {info['load_average_start']})…")
    run = bring_up(n, "", notes)
    names = register(actor, environment, run)
    worker = runtime.start_worker(args.concurrency)
    workdir = Path(tempfile.mkdtemp(prefix=f"opsportal-bench-{runtime.RUN_ID}-"))
    runtime.cleanup.push("playbook workdir", shutil.rmtree, workdir, True)
    source = workdir / "project"
    source.mkdir()
    (source / "one.yml").write_text(PLAYBOOK)
    project = projects.create_project(actor, name="bench", environment=environment, kind="directory",
                                      path=str(source), branch="")
    runtime.cleanup.push("bench project copies", projects.sources.forget, projects.root(project.pk))
    synced = runtime.wait_job(projects.launch_sync(actor, project).pk, timeout=120)
    project.refresh_from_db()
    if synced.state != "succeeded":
        raise RuntimeError(f"the project sync ended {synced.state}")
    checkout = projects.checkout(project, project.revision)

    # The peer's inventory: what the portal writes for its own run of these hosts.
    key = Path(run.key_path).read_text()
    hosts = [ansible.Host(name=name, address=h.address, port=h.port, user=h.user, private_key=key,
                          host_key=h.host_key) for name, h in zip(names, run.hosts, strict=True)]
    inventory_dir = workdir / "peer"
    inventory_dir.mkdir(mode=0o700)
    (inventory_dir / "tmp").mkdir()
    inventory = ansible.write_inventory(inventory_dir, hosts, {})
    env = {k: v for k, v in ansible._environment(inventory_dir, {}).items()}

    # Warm-up: the worker's first job, byte-compiled modules; nothing timed.
    portal_run(actor, environment, names[:2], 2)
    peer_run(checkout, inventory_dir, inventory, 2, env, n)

    contenders = [("portal ansible.playbook", lambda: portal_run(actor, environment, names, forks)),
                  ("ansible-playbook alone", lambda: peer_run(checkout, inventory_dir, inventory, forks, env, n))]
    results = {label: [] for label, _ in contenders}
    print(f"\none-task playbook on {n} hosts, forks {forks}, {args.repeats} repeats")
    for repeat in range(args.repeats):
        order = contenders[repeat % 2:] + contenders[:repeat % 2]
        for label, func in order:
            result = func()
            results[label].append(result)
            print(f"  repeat {repeat + 1}: {label:26} {fmt(result['seconds'])} s, {result['ok']}/{n} ok, "
                  f"load {result['load'][0]}")
    portal = median([r["seconds"] for r in results["portal ansible.playbook"]])
    peer = median([r["seconds"] for r in results["ansible-playbook alone"]])
    print(f"\nmedians: portal {fmt(portal)} s, ansible-playbook {fmt(peer)} s, ratio {fmt(portal / peer)}")
    del worker
    runtime.save_results("playbooks", {"machine": info, "notes": notes, "hosts": n, "forks": forks,
                                       "results": results, "portal_s": portal, "peer_s": peer,
                                       "ratio": portal / peer})
