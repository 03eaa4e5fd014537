"""`python -m bench hosts`: `uname -a` on fleet hosts through the portal vs ansible and bare Fabric (issue 6).

On one fleet (fleet.Fleet.up, sshd containers on 127.0.0.1), in the same run, repeated:

- portal: host.command `uname -a` launched with the service layer (strategy parallel, limit 50),
  timed from the launch call until the job's end in the database (its `finished`, written after
  every per-host result was stored; runtime.follow_job);
- `ansible all -m command -a 'uname -a' -f 50` and `-m raw`, default ansible settings (ControlPersist
  on), a fresh ControlPath directory per run so each run connects cold, like the portal;
- the floor: schedulers.host.SSHPool + run_command on 50 threads, cold (a new pool, handshakes
  included), the same backend the portal uses without the job machinery; and Fabric's own
  ThreadingGroup.run for reference;
- host.deploy of a small tar.gz with a restart hook on the same hosts;
- the portal and the floor on 1, 10, 50 and 200 hosts (seconds and seconds per host), sampling the
  worker's memory (RSS of the worker process tree) during each job; a 200-host job at limit 200 too.
"""
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import runtime
from .runtime import fmt, median

HERE = Path(__file__).resolve().parent
COMMAND = "uname -a"


def add_arguments(parser):
    parser.add_argument("--hosts", type=int, default=50, help="hosts in the comparison with the peers (50)")
    parser.add_argument("--sizes", default="1,10,50,200", help="host counts of the scaling series (1,10,50,200)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (3)")
    parser.add_argument("--limit", type=int, default=50,
                        help="parallel targets: portal limit, ansible -f, threads (50)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency (2)")
    parser.add_argument("--skip-ansible", action="store_true", help="do not run the ansible peers")
    parser.add_argument("--skip-deploy", action="store_true", help="do not run the deploy benchmark")


# Setup ---------------------------------------------------------------------------------------

def ensure_ansible():
    """Install the pinned ansible-core (bench/requirements.txt) into this venv when missing."""
    ansible = runtime.BIN / "ansible"
    if not ansible.exists():
        print("installing ansible-core (bench/requirements.txt) into the venv…")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
                       check=True)
    version = subprocess.run([str(ansible), "--version"], capture_output=True, text=True, check=True).stdout
    return version.splitlines()[0]


def fleet_size_possible(wanted):
    """How many hosts this machine can take now: about 64 MiB per host and 2 GiB to spare."""
    import psutil

    available = psutil.virtual_memory().available
    per_host, spare = 64 * 2**20, 2 * 2**30
    fits = max(0, int((available - spare) // per_host))
    return min(wanted, fits), available


def register(actor, environment, fleet_run):
    from ops_portal.inventory import services as inventory

    credential = inventory.create_credential(actor, name=f"{runtime.NAME_PREFIX}{fleet_run.run_id}",
                                             environment=environment, username="root",
                                             private_key=Path(fleet_run.key_path).read_text())
    names = []
    for host in fleet_run.hosts:
        name = f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-{host.name}"
        inventory.create_host(actor, name=name, address=host.address, port=host.port, username=host.user,
                              environment=environment, credential=credential, host_key=host.host_key)
        names.append(name)
    return names


# The portal ----------------------------------------------------------------------------------

def portal_run(actor, environment, names, limit, worker, action="host.command", values=None, timeout=600):
    from ops_portal.jobs.launch import launch_adhoc
    from ops_portal.jobs.models import Job, JobTarget

    values = values or {"command": COMMAND}
    load = runtime.load_average()
    cpu_before = tree_cpu(worker.pid)
    with runtime.TreeSampler(worker.pid) as sampler:
        started_wall, started = time.time(), time.perf_counter()
        job = launch_adhoc(actor, environment=environment, action=action, values=values,
                                    selector={"names": names}, strategy={"kind": "parallel", "limit": limit},
                                    name=f"bench {action} x{len(names)}")
        launched = time.perf_counter()
        _, finished, _, finished_at = runtime.follow_job(job.pk, len(names), started, timeout)
    worker_cpu = tree_cpu(worker.pid) - cpu_before
    job = Job.objects.get(pk=job.pk)
    states = dict.fromkeys(("ok", "failed"), 0)
    for state in JobTarget.objects.filter(job=job).values_list("state", flat=True):
        states["ok" if state == "ok" else "failed"] += 1
    if job.state != "succeeded":
        errors = list(JobTarget.objects.filter(job=job).exclude(state="ok").values_list("name", "error")[:3])
        print(f"  portal job {job.pk} {job.state}: {errors or job.error}")
    # From the launch call to the job's end as the database recorded it (after its last target's
    # result was stored), not to when a poll saw it.
    return {"seconds": runtime.ended_after(finished_at, started_wall), "seen_finished_s": finished - started,
            "launch_call_s": launched - started, "ok": states["ok"], "failed": states["failed"],
            "state": job.state, "job": job.pk, "worker_rss_peak_mib": round(sampler.peak / 2**20, 1),
            "worker_rss_before_mib": round(sampler.baseline / 2**20, 1), "load": load,
            "cpu_s": round(worker_cpu, 3), "phases_ms": runtime.job_phases(job.pk)}


def tree_cpu(pid):
    """CPU seconds (user + system) used so far by a process and its descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


# The peers -----------------------------------------------------------------------------------

class Ansible:
    def __init__(self, fleet_run, hosts, workdir):
        self.workdir = workdir
        self.inventory = workdir / "inventory.ini"
        lines = ["[bench]"]
        for host in hosts:
            lines.append(f"{host.name} ansible_host={host.address} ansible_port={host.port}")
        lines += ["", "[all:vars]", f"ansible_user={hosts[0].user}",
                  f"ansible_ssh_private_key_file={fleet_run.key_path}",
                  f"ansible_ssh_common_args='-o UserKnownHostsFile={fleet_run.known_hosts_path} "
                  "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes'"]
        self.inventory.write_text("\n".join(lines) + "\n")
        self.config = workdir / "ansible.cfg"
        self.config.write_text("[defaults]\nhost_key_checking = True\ninterpreter_python = auto_silent\n"
                               "retry_files_enabled = False\n")

    def run(self, module, forks, pattern="all", expected=None):
        control = Path(tempfile.mkdtemp(prefix="cp-", dir=self.workdir))
        env = {**os.environ, "ANSIBLE_CONFIG": str(self.config), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
               "ANSIBLE_HOME": str(self.workdir / "home"), "ANSIBLE_LOCAL_TEMP": str(self.workdir / "tmp"),
               "ANSIBLE_NOCOLOR": "1"}
        load = runtime.load_average()
        started = time.perf_counter()
        proc = subprocess.run([str(runtime.BIN / "ansible"), pattern, "-i", str(self.inventory), "-m", module,
                               "-a", COMMAND, "-f", str(forks), "-o"], capture_output=True, text=True,
                              cwd=self.workdir, env=env, timeout=900)
        seconds = time.perf_counter() - started
        end_control_masters(control)
        ok = sum(1 for line in proc.stdout.splitlines() if (" | CHANGED" in line or " | SUCCESS" in line)
                 and "Linux" in line)
        failed = (expected or ok) - ok
        if proc.returncode != 0 or failed:
            print(f"  ansible -m {module}: exit {proc.returncode}, {ok} ok; {proc.stderr.strip()[-300:]}")
        shutil.rmtree(control, ignore_errors=True)
        return {"seconds": seconds, "ok": ok, "failed": failed, "exit": proc.returncode, "load": load}


def end_control_masters(control_dir):
    """End the ssh ControlPersist masters an ansible run left (they would make the next run warm)."""
    import psutil

    mine = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "ssh" and any(str(control_dir) in arg for arg in cmdline):
            mine.append(proc)
    for proc in mine:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    psutil.wait_procs(mine, timeout=5)


def end_processes_using(path):
    """End what an interrupted ansible run left: its forks are session leaders of their own, so they
    outlive the ansible process that subprocess.run kills. They are found by our work directory."""
    import psutil

    left = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid != os.getpid() and any(str(path) in arg for arg in (proc.info.get("cmdline") or [])):
            left.append(proc)
    for proc in left:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=5)


def ssh_targets(fleet_run, hosts):
    from schedulers import host as ssh

    key = Path(fleet_run.key_path).read_text()
    return [ssh.SSHTarget(name=h.name, address=h.address, port=h.port, username=h.user, private_key=key,
                          pinned_host_key=h.host_key, connect_timeout=10.0) for h in hosts]


def fabric_pool_run(targets, threads, *, warm=False):
    """The floor: the portal's own SSH backend (pool + run_command) on `threads` threads, cold (a
    new pool: handshakes included). With warm, the pool first runs the command once on every
    target untimed, then the timed pass reuses those connections: the warm floor, what a command
    costs on a kept connection with no job machinery around it."""
    from schedulers import host as ssh

    def one(target):
        lines = []
        try:
            result = ssh.run_command(pool, target, COMMAND, on_line=lambda stream, text: lines.append(text),
                                     timeout=120)
        except ssh.BackendError:
            return False
        return result.ok and any("Linux" in line for line in lines)

    pool = ssh.SSHPool(max_connections=threads)
    try:
        with ThreadPoolExecutor(max_workers=threads) as executor:
            if warm:
                list(executor.map(one, targets))
            load = runtime.load_average()
            cpu = time.process_time()
            started = time.perf_counter()
            results = list(executor.map(one, targets))
            seconds = time.perf_counter() - started
            cpu_s = round(time.process_time() - cpu, 3)
    finally:
        pool.close()
    ok = sum(results)
    return {"seconds": seconds, "ok": ok, "failed": len(targets) - ok, "load": load, "cpu_s": cpu_s}


def fabric_group_run(fleet_run, hosts):
    """Fabric's ThreadingGroup.run (one thread per host), host keys from the fleet's known_hosts."""
    import paramiko
    from fabric import ThreadingGroup

    load = runtime.load_average()
    started = time.perf_counter()
    group = ThreadingGroup(*[f"{h.user}@{h.address}:{h.port}" for h in hosts],
                           connect_kwargs={"key_filename": str(fleet_run.key_path), "look_for_keys": False,
                                           "allow_agent": False, "timeout": 10})
    for conn in group:
        conn.client.load_host_keys(str(fleet_run.known_hosts_path))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        results = group.run(COMMAND, hide=True, warn=True)
        ok = sum(1 for r in results.values() if getattr(r, "ok", False) and "Linux" in r.stdout)
    except Exception as exc:  # fabric.exceptions.GroupException carries partial results
        results = getattr(exc, "result", {})
        ok = sum(1 for r in results.values() if getattr(r, "ok", False) and "Linux" in r.stdout)
    seconds = time.perf_counter() - started
    group.close()
    return {"seconds": seconds, "ok": ok, "failed": len(hosts) - ok, "load": load}


# The benchmark -------------------------------------------------------------------------------

def _line(label, runs, n, floor=None):
    secs = [r["seconds"] for r in runs]
    ok = min(r["ok"] for r in runs)
    text = (f"  {label:28} median {fmt(median(secs))} s ({', '.join(fmt(s) for s in secs)}), "
            f"{fmt(median(secs) / n * 1000, 1)} ms/host, all ok: {ok == n}")
    if floor:
        text += f", {fmt(median(secs) / floor)}x the floor"
    if all("cpu_s" in r for r in runs):
        text += f"; CPU {fmt(median([r['cpu_s'] for r in runs]) / n * 1000, 1)} ms/host"
    return text


def settle(max_wait=90.0, busy=60.0):
    """Wait (at most max_wait s) until the CPUs are less than `busy` % used for 3 s in a row, as after
    starting many containers; return (seconds waited, last CPU %)."""
    import psutil

    started, calm = time.monotonic(), 0
    percent = psutil.cpu_percent(interval=1.0)
    while time.monotonic() - started < max_wait:
        calm = calm + 1 if percent < busy else 0
        if calm >= 3:
            break
        percent = psutil.cpu_percent(interval=1.0)
    return time.monotonic() - started, percent


def quiet(run):
    """Stop the demo `ticker` program on each host: 2-3 forks a second per host, which on two cores
    and 200 hosts is a measurable load that has nothing to do with what is measured."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda h: run.exec(h.name, ["supervisorctl", "stop", "ticker"]), run.hosts))
    return sum(1 for r in results if r.exit_code == 0)


def bring_up(count, suffix, notes):
    import fleet

    started = time.perf_counter()
    run = fleet.Fleet.up(count, run_id=f"bench-{runtime.RUN_ID}{suffix}", name_prefix=f"bench{suffix}",
                         ready_timeout=60 + 2 * count)
    runtime.cleanup.push(f"fleet {run.run_id} down", run.down)
    took = time.perf_counter() - started
    quieted = quiet(run)
    waited, cpu = settle()
    print(f"  {count} hosts up in {fmt(took, 1)} s (ticker stopped on {quieted}); waited {fmt(waited, 0)} s for "
          f"the CPUs to calm down (now {fmt(cpu, 0)} % busy, load average {runtime.load_average()})")
    notes.append(f"Fleet.up({count}) took {took:.1f} s; CPU {cpu:.0f} % busy {waited:.0f} s later")
    return run


class Prepared:
    """What a fleet benchmark starts from: the bench user and environment, N fleet hosts registered
    through the inventory service, a Celery worker, the bare backend's targets and, unless skipped,
    ansible on a work directory of its own; warmed up (imports, the worker's first job, ansible's
    byte-compiled modules), nothing timed."""

    def __init__(self, args, count, suffix="", ansible_hosts=None, warm=False, ansible_modules=("raw", "command")):
        import fleet

        runtime.setup_django()
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # fleet's login retries while hosts start
        self.actor, _, self.environment = runtime.bench_user()
        self.info = runtime.machine()
        self.notes = []
        self.ansible_version = None if args.skip_ansible else ensure_ansible()
        fleet.ensure_engine()
        fleet.ensure_images()
        print(f"bringing up {count} fleet hosts (load average {self.info['load_average_start']})…")
        self.fleet = bring_up(count, suffix, self.notes)
        self.hosts = list(self.fleet.hosts)
        self.names = register(self.actor, self.environment, self.fleet)
        self.worker = runtime.start_worker(args.concurrency, warm=warm)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"opsportal-bench-{runtime.RUN_ID}-"))
        runtime.cleanup.push("ansible workdir", shutil.rmtree, self.workdir, True)
        runtime.cleanup.push("ansible leftovers", end_processes_using, self.workdir)
        self.targets = ssh_targets(self.fleet, self.hosts)
        ansible_hosts = self.hosts if ansible_hosts is None else self.hosts[:ansible_hosts]
        self.ansible = None if args.skip_ansible else Ansible(self.fleet, ansible_hosts, self.workdir)
        portal_run(self.actor, self.environment, self.names[:2], getattr(args, "limit", count), self.worker)
        fabric_pool_run(self.targets[:2], 2)
        for module in ansible_modules if self.ansible else ():
            self.ansible.run(module, 2, pattern=self.hosts[0].name, expected=1)


def main(args):
    import psutil

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    n = args.hosts
    first_size = max([n] + [s for s in sizes if s <= n])
    prepared = Prepared(args, first_size, ansible_hosts=n)
    actor, environment, info, notes = prepared.actor, prepared.environment, prepared.info, prepared.notes
    ansible_version, fleet_a, hosts, names = prepared.ansible_version, prepared.fleet, prepared.hosts, prepared.names
    worker, targets, ansible = prepared.worker, prepared.targets, prepared.ansible

    # 1. The comparison on n hosts, each repeat in a rotated order.
    contenders = [
        ("portal host.command", lambda: portal_run(actor, environment, names[:n], args.limit, worker)),
        ("floor: SSHPool+run_command", lambda: fabric_pool_run(targets[:n], min(args.limit, n))),
        ("fabric ThreadingGroup", lambda: fabric_group_run(fleet_a, hosts[:n])),
    ]
    if ansible:
        contenders += [("ansible -m command", lambda: ansible.run("command", args.limit, expected=n)),
                       ("ansible -m raw", lambda: ansible.run("raw", args.limit, expected=n))]
    comparison = {label: [] for label, _ in contenders}
    print(f"\n1. {COMMAND!r} on {n} hosts, {args.repeats} repeats (parallelism {args.limit})")
    for repeat in range(args.repeats):
        order = contenders[repeat % len(contenders):] + contenders[:repeat % len(contenders)]
        for label, func in order:
            result = func()
            comparison[label].append(result)
            print(f"  repeat {repeat + 1}: {label:28} {fmt(result['seconds'])} s, {result['ok']}/{n} ok, "
                  f"load {result['load'][0]}")
    floor = median([r["seconds"] for r in comparison["floor: SSHPool+run_command"]])
    portal = median([r["seconds"] for r in comparison["portal host.command"]])

    # 2. Deploy.
    deploys = []
    if not args.skip_deploy:
        from ops_portal.inventory import services as inventory

        archive = inventory.pack_directory({"app/VERSION": b"1.0\n", "app/run.sh": b"#!/bin/sh\necho hello\n",
                                            "app/static/index.html": b"<p>bench</p>\n" * 50})
        artifact = inventory.create_artifact(actor, name=f"bench-{runtime.RUN_ID}", environment=environment,
                                             data=archive)
        values = {"artifact": artifact.pk, "base_dir": "/srv/bench", "keep": 3,
                  "restart_hook": "test -f app/VERSION && echo restarted"}
        print(f"\n2. host.deploy ({len(archive)} B tar.gz, restart hook) on {n} hosts")
        for repeat in range(args.repeats):
            result = portal_run(actor, environment, names[:n], args.limit, worker, action="host.deploy",
                                values=values)
            deploys.append(result)
            print(f"  repeat {repeat + 1}: {fmt(result['seconds'])} s, {result['ok']}/{n} ok, "
                  f"load {result['load'][0]}")

    partial = {"machine": info, "notes": notes, "ansible": ansible_version, "hosts": n, "comparison": comparison,
               "deploy": deploys, "partial": True}
    runtime.save_results("hosts", partial)

    # 3. Scaling: more hosts if asked (a second fleet run), then every size under the same conditions.
    biggest = max(sizes)
    fleet_size = first_size
    if biggest > first_size:
        possible, available = fleet_size_possible(biggest - first_size)
        if possible < biggest - first_size:
            notes.append(f"{biggest} hosts asked; memory for {first_size + possible} "
                         f"({available / 2**30:.1f} GiB available)")
        print(f"\nbringing up {possible} more hosts…")
        try:
            fleet_b = bring_up(possible, "x", notes) if possible else None
        except Exception as exc:  # FleetError, TimeoutError (hosts too slow to accept SSH), docker errors
            notes.append(f"Fleet.up({possible}) on top of {first_size} failed: {type(exc).__name__}: {exc}")
            print(f"  {notes[-1]}")
            fleet_b = None
        if fleet_b is not None:
            hosts += fleet_b.hosts
            names += register(actor, environment, fleet_b)[:]
            targets += ssh_targets(fleet_b, fleet_b.hosts)
            fleet_size = len(hosts)
    idle_cpu = psutil.cpu_percent(interval=3.0)
    sizes = [s for s in sizes if s <= fleet_size]
    scaling = {size: {"portal": [], "floor": []} for size in sizes}
    print(f"\n3. {COMMAND!r} on {', '.join(map(str, sizes))} hosts (parallelism {args.limit}; {fleet_size} hosts "
          f"up, CPU {fmt(idle_cpu, 0)} % busy before)")
    for repeat in range(args.repeats):
        for size in sizes:
            threads = min(args.limit, size)
            p = portal_run(actor, environment, names[:size], args.limit, worker)
            f = fabric_pool_run(targets[:size], threads)
            scaling[size]["portal"].append(p)
            scaling[size]["floor"].append(f)
            print(f"  repeat {repeat + 1}: {size:4} hosts: portal {fmt(p['seconds'])} s ({p['ok']} ok, worker RSS "
                  f"peak {p['worker_rss_peak_mib']} MiB), floor {fmt(f['seconds'])} s ({f['ok']} ok), "
                  f"load {p['load'][0]}")
    wide = None
    if fleet_size > args.limit:
        wide_limit = min(fleet_size, 200)
        wide = portal_run(actor, environment, names[:fleet_size], wide_limit, worker)
        wide["limit"] = wide_limit
        print(f"  {fleet_size} hosts at limit {wide_limit}: {fmt(wide['seconds'])} s, {wide['ok']} ok, "
              f"worker RSS {wide['worker_rss_before_mib']} → peak {wide['worker_rss_peak_mib']} MiB")

    summary = {
        "machine": info, "args": {k: v for k, v in vars(args).items() if k != "func"}, "notes": notes,
        "ansible": ansible_version, "fleet_size": fleet_size, "hosts": n, "idle_cpu_percent_scaling": idle_cpu,
        "comparison": comparison, "deploy": deploys,
        "scaling": {str(k): v for k, v in scaling.items()}, "wide": wide,
        "load_average_end": runtime.load_average(),
    }
    path = runtime.save_results("hosts", summary)

    print(f"\nhosts: {COMMAND!r}, medians of {args.repeats} (load average {info['load_average_start']} → "
          f"{summary['load_average_end']}; {info['date']}; commit {info['commit']})")
    print(f"1. {n} hosts, parallelism {args.limit}")
    for label, runs in comparison.items():
        print(_line(label, runs, n, floor))
    print(f"  portal / floor = {fmt(portal / floor)} (goal ≤ 2)")
    for label in ("ansible -m command", "ansible -m raw"):
        if label in comparison:
            print(f"  {label} / portal = {fmt(median([r['seconds'] for r in comparison[label]]) / portal)}")
    if deploys:
        print("2. deploy")
        print(_line("portal host.deploy", deploys, n, floor))
    print(f"3. scaling ({fleet_size} hosts up; portal, floor, ratio; seconds per host)")
    for size in sizes:
        p = median([r["seconds"] for r in scaling[size]["portal"]])
        f = median([r["seconds"] for r in scaling[size]["floor"]])
        rss = max(r["worker_rss_peak_mib"] for r in scaling[size]["portal"])
        pc = median([r["cpu_s"] for r in scaling[size]["portal"]])
        fc = median([r["cpu_s"] for r in scaling[size]["floor"]])
        print(f"  {size:4} hosts: portal {fmt(p)} s ({fmt(p / size * 1000, 1)} ms/host), floor {fmt(f)} s "
              f"({fmt(f / size * 1000, 1)} ms/host), {fmt(p / f)}x; CPU per host: worker "
              f"{fmt(pc / size * 1000, 1)} ms, floor {fmt(fc / size * 1000, 1)} ms; worker RSS peak {rss} MiB")
    if wide:
        print(f"  {fleet_size} hosts at limit {wide['limit']}: {fmt(wide['seconds'])} s, worker RSS peak "
              f"{wide['worker_rss_peak_mib']} MiB (before {wide['worker_rss_before_mib']} MiB)")
    for note in notes:
        print(f"  note: {note}")
    print(f"  results: {path}")
    return summary
