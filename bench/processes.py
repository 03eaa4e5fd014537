"""`python -m bench processes`: the process inventory, remote and local, against `ps` in the same run (issue 12).

1. One fleet host running --extra (2,000) extra `sleep` processes, repeated in rotated order:
   - portal: inventory.scan through an SSHShell on a warm SSHPool (the collector sent as
     `python3 -c`, answer gzip + base64), and cold (a new connection per scan);
   - peers: `ps -eo pid,ppid,user,stat,rss,pcpu,args` through the same SSHShell (hostlib's command
     wrapper), as a plain exec request on a warm connection (what `ssh host ps …` does once
     connected), and OpenSSH's own `ssh host ps …` (cold: a new connection each time);
   - bytes: what each moved over SSH, read from the host's eth0 counters (IP, TCP and SSH included)
     around one run of each, and the payload the portal decoded;
   - CPU: the CPU time (user + system) the collector and `ps` each cost on the host, read from
     the rusage of a wrapper that runs them (through docker exec): on this shared machine wall
     times swing with the other sessions' load, the CPU a scan costs much less.
2. The portal's own machine: inventory.scan_local() (the /proc reader, its default on Linux, in
   this process), the same with psutil, and `ps -eo …` as a subprocess; wall and CPU time.
3. Fleet-wide: inventory.scan_many over N hosts at once (--fleet, capped by free memory), with a
   cold pool (handshakes included) and a warm one.
4. The portal path (unless --skip-portal): the same N hosts registered in the bench database, a
   processes.scan job launched as the API does and run by a live Celery worker (SSH pool, collector,
   diff against the previous scan, bulk replace of each host's rows by the job's writer thread),
   timed from launch until the job has finished and its rows are stored; the first scan of the
   hosts apart from the later ones (which also compute changes and CPU deltas).

Parts 1-3 need no database, worker or web process; part 4 starts its own worker on a private
database. Results: var/bench/processes-<run id>.json.
"""
import logging
import subprocess
import time
from pathlib import Path

from . import runtime
from .runtime import fmt, median

PS = ["ps", "-eo", "pid,ppid,user,stat,rss,pcpu,args"]


def add_arguments(parser):
    parser.add_argument("--extra", type=int, default=2000, help="extra processes on the measured host (2000)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each measurement (7)")
    parser.add_argument("--fleet", type=int, default=50, help="hosts in the fleet-wide inventory (50)")
    parser.add_argument("--workers", type=int, default=50, help="parallel scans in the fleet-wide inventory (50)")
    parser.add_argument("--skip-portal", action="store_true", help="leave out the portal path (part 4)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency in part 4 (2)")


def timed(func):
    started = time.perf_counter()
    value = func()
    return time.perf_counter() - started, value


def eth0(run, host):
    out = run.exec(host, "cat /sys/class/net/eth0/statistics/rx_bytes /sys/class/net/eth0/statistics/tx_bytes")
    rx, tx = out.check().stdout.split()
    return int(rx) + int(tx)


def wire_bytes(run, host, func):
    """Bytes through the host's network interface while func runs (docker exec reads them, not SSH)."""
    before = eth0(run, host)
    func()
    time.sleep(0.2)  # the last ACKs
    return eth0(run, host) - before


# Runs on the host: the command given as arguments, then its CPU seconds (user + system) and wall seconds.
CPU_WRAPPER = ("import resource, subprocess, sys, time\n"
               "started = time.time()\n"
               "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
               "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "print(usage.ru_utime + usage.ru_stime, time.time() - started)\n")


def host_cpu(run, host, argv):
    """(CPU seconds, wall seconds) of one run of argv on the host, measured there."""
    cpu, wall = run.exec(host, ["python3", "-c", CPU_WRAPPER, *argv]).check().stdout.split()
    return float(cpu), float(wall)


def spawn(run, host, count):
    script = (f"for i in $(seq {count}); do setsid sleep 100000 </dev/null >/dev/null 2>&1 & done; "
              "sleep 1; ps -e --no-headers | wc -l")
    return int(run.exec(host, ["sh", "-c", script]).check().stdout)


def plain_exec(pool, target, argv):
    """One exec request on a pooled connection, output read to the end: `ssh host CMD` once connected."""
    import shlex

    with pool.connection(target) as conn:
        chan = conn.channel()
        try:
            chan.exec_command(shlex.join(argv))
            chunks = []
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                chunks.append(data)
            while chan.recv_stderr_ready():
                chan.recv_stderr(65536)
            if chan.recv_exit_status() != 0:
                raise RuntimeError(f"{argv[0]} failed on {target.name}")
            return b"".join(chunks)
        finally:
            chan.close()


def openssh(run, host, argv):
    h = run.host(host)
    command = ["ssh", "-q", "-i", str(run.key_path), "-o", f"UserKnownHostsFile={run.known_hosts_path}",
               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(h.port), f"{h.user}@{h.address}",
               *argv]
    return subprocess.run(command, stdout=subprocess.PIPE, check=True).stdout


def remote_comparison(run, target, args):
    from schedulers.hostlib.connect import SSHPool
    from schedulers.process import inventory
    from schedulers.process.shells import SSHShell, python_argv

    host = target.name
    total = spawn(run, host, args.extra)
    print(f"\n1. one host with {total} processes ({args.extra} extra sleeps), {args.repeats} repeats")
    pool = SSHPool(4)
    runtime.cleanup.push("bench pool", pool.close)
    shell = SSHShell(pool, target)

    def cold_scan():
        with SSHPool(1) as fresh:
            return inventory.scan(SSHShell(fresh, target))

    contenders = [
        ("portal scan, warm pool", lambda: inventory.scan(shell)),
        ("ps via SSHShell, warm pool", lambda: shell.run(PS)),
        ("ps as plain exec, warm", lambda: plain_exec(pool, target, PS)),
        ("portal scan, cold", cold_scan),
        ("OpenSSH ssh host ps, cold", lambda: openssh(run, host, PS)),
    ]
    for _, func in contenders:  # warm-up: the connection, the host's page cache
        func()
    seconds = {label: [] for label, _ in contenders}
    for repeat in range(args.repeats):
        shift = repeat % len(contenders)
        for label, func in contenders[shift:] + contenders[:shift]:
            took, _ = timed(func)
            seconds[label].append(took)
    snapshot = inventory.scan(shell)
    ps_text = shell.run(PS).stdout
    wire = {label: wire_bytes(run, host, func) for label, func in contenders}
    results = {}
    for label, _ in contenders:
        results[label] = {"median_s": median(seconds[label]), "runs_s": seconds[label], "wire_bytes": wire[label]}
    results["portal scan, warm pool"].update(processes=len(snapshot.processes), payload_bytes=snapshot.payload_bytes)
    results["ps via SSHShell, warm pool"].update(lines=ps_text.count(b"\n") - 1, payload_bytes=len(ps_text))
    for label, _ in contenders:
        r = results[label]
        print(f"  {label:28} median {fmt(r['median_s'], 3)} s ({', '.join(fmt(s, 3) for s in r['runs_s'])}); "
              f"{r['wire_bytes']:,} bytes on the wire")
    ratio = results["portal scan, warm pool"]["median_s"] / results["ps as plain exec, warm"]["median_s"]
    print(f"  portal scan / plain ps, warm: {fmt(ratio)}x (goal <= 2); payload {snapshot.payload_bytes:,} bytes "
          f"for {len(snapshot.processes)} processes vs ps {len(ps_text):,} bytes")
    results["ratio_warm_vs_plain_ps"] = ratio
    results["ratio_cold_vs_openssh"] = (results["portal scan, cold"]["median_s"]
                                        / results["OpenSSH ssh host ps, cold"]["median_s"])
    results["ratio_wire_bytes_warm"] = wire["portal scan, warm pool"] / wire["ps as plain exec, warm"]
    collector_argv = python_argv(inventory.collector_source())
    cpu = {"collector": [], "ps": []}
    for _ in range(args.repeats):
        for label, argv in (("collector", collector_argv), ("ps", PS)):
            cpu[label].append(host_cpu(run, host, argv)[0])
    results["host_cpu"] = {label: {"median_s": median(runs), "runs_s": runs} for label, runs in cpu.items()}
    results["ratio_host_cpu"] = median(cpu["collector"]) / median(cpu["ps"])
    print(f"  CPU on the host: collector median {fmt(median(cpu['collector']) * 1000, 1)} ms "
          f"({', '.join(fmt(c * 1000, 1) for c in cpu['collector'])}), ps {fmt(median(cpu['ps']) * 1000, 1)} ms "
          f"({', '.join(fmt(c * 1000, 1) for c in cpu['ps'])}): {fmt(results['ratio_host_cpu'])}x")
    run.exec(host, ["pkill", "-x", "sleep"])
    return results


def local_comparison(args):
    import resource

    from schedulers.process import inventory

    def ps():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(PS, stdout=subprocess.PIPE, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    def in_process(func):
        def measured():
            started = time.process_time()
            func()
            return time.process_time() - started
        return measured

    print(f"\n2. the portal's own machine, {args.repeats} repeats")
    first, snapshot = timed(inventory.scan_local)
    contenders = [
        ("scan_local (/proc reader)", in_process(inventory.scan_local)),
        ("scan_local (psutil)", in_process(lambda: inventory.scan_local(use_psutil=True))),
        ("ps -eo … (subprocess)", ps),
    ]
    seconds = {label: [] for label, _ in contenders}
    cpu = {label: [] for label, _ in contenders}
    for repeat in range(args.repeats):
        shift = repeat % len(contenders)
        for label, func in contenders[shift:] + contenders[:shift]:
            took, used = timed(func)
            seconds[label].append(took)
            cpu[label].append(used)
    results = {"processes": len(snapshot.processes), "source": snapshot.source, "first_scan_s": first}
    for label, runs in seconds.items():
        results[label] = {"median_s": median(runs), "runs_s": runs, "cpu_median_s": median(cpu[label]),
                          "cpu_runs_s": cpu[label]}
        print(f"  {label:28} median {fmt(median(runs) * 1000, 1)} ms "
              f"({', '.join(fmt(s * 1000, 1) for s in runs)}); CPU {fmt(median(cpu[label]) * 1000, 1)} ms")
    peer = results["ps -eo … (subprocess)"]
    for key, label in (("proc", "scan_local (/proc reader)"), ("psutil", "scan_local (psutil)")):
        results[f"ratio_{key}_vs_ps"] = results[label]["median_s"] / peer["median_s"]
        results[f"cpu_ratio_{key}_vs_ps"] = results[label]["cpu_median_s"] / peer["cpu_median_s"]
    print(f"  {len(snapshot.processes)} processes ({snapshot.source}); first scan in this process "
          f"{fmt(first * 1000, 1)} ms; /proc reader / ps: {fmt(results['ratio_proc_vs_ps'])}x wall, "
          f"{fmt(results['cpu_ratio_proc_vs_ps'])}x CPU (goal <= 2); "
          f"psutil / ps: {fmt(results['ratio_psutil_vs_ps'])}x")
    return results


def fleet_wide(run, targets, args):
    from schedulers.hostlib.connect import SSHPool
    from schedulers.process import inventory
    from schedulers.process.shells import SSHShell

    n = len(targets)
    print(f"\n3. fleet-wide inventory of {n} hosts, {args.workers} at once, {args.repeats} repeats")
    cold, warm, counts = [], [], []
    for _ in range(args.repeats):
        with SSHPool(max(n, 1)) as pool:
            shells = [SSHShell(pool, t) for t in targets]
            took, found = timed(lambda shells=shells: inventory.scan_many(shells, workers=args.workers))
            cold.append(took)
            took, found = timed(lambda shells=shells: inventory.scan_many(shells, workers=args.workers))
            warm.append(took)
            counts.append(sum(1 for s in found.values() if not isinstance(s, str)))
    errors = [s for s in found.values() if isinstance(s, str)]
    print(f"  cold pool (handshakes included) median {fmt(median(cold))} s ({', '.join(fmt(s) for s in cold)})")
    print(f"  warm pool                       median {fmt(median(warm))} s ({', '.join(fmt(s) for s in warm)})")
    print(f"  hosts answered: {min(counts)}/{n}" + (f"; errors: {errors[:3]}" if errors else ""))
    return {"hosts": n, "workers": args.workers, "cold_median_s": median(cold), "cold_runs_s": cold,
            "warm_median_s": median(warm), "warm_runs_s": warm, "answered_min": min(counts), "errors": errors[:5]}


def portal_scans(run, args):
    """processes.scan jobs over every host of the run, through a live worker into the database."""
    runtime.setup_django()
    from ops_portal.jobs.models import Job
    from ops_portal.processes import services
    from ops_portal.processes.models import Process, ProcessScan

    from .hosts import register

    actor, _, environment = runtime.bench_user()
    names = register(actor, environment, run)
    runtime.start_worker(args.concurrency)  # stopped by runtime.cleanup
    n = len(names)
    print(f"\n4. the portal path: processes.scan jobs over {n} hosts (limit {services.SCAN_LIMIT}), worker "
          f"concurrency {args.concurrency}, {args.repeats} repeats after the first scan")

    def one():
        started = time.perf_counter()
        job = services.launch_scan(actor, environment)
        runtime.wait_job(job.pk, timeout=600)
        took = time.perf_counter() - started
        job = Job.objects.get(pk=job.pk)
        ok = job.targets.filter(state="ok").count()
        if job.state != "succeeded":
            errors = list(job.targets.exclude(state="ok").values_list("name", "error")[:3])
            print(f"  job {job.pk} {job.state}: {errors or job.error}")
        return took, ok, job

    first, ok, job = one()
    rows = Process.objects.filter(host__environment=environment).count()
    print(f"  first scan (no previous): {fmt(first)} s, {ok}/{n} hosts, {rows:,} processes stored")
    runs = []
    for _ in range(args.repeats):
        took, ok, job = one()
        runs.append(took)
    scans = ProcessScan.objects.filter(job_id=job.pk, error="")
    stored = scans.count()
    changes = sum(s.new_count + s.gone_count + s.restarted_count for s in scans)
    print(f"  later scans (changes, CPU deltas): median {fmt(median(runs))} s ({', '.join(fmt(r) for r in runs)}); "
          f"last: {ok}/{n} hosts ok, {stored} scans stored, {changes} changes (goal: {n} hosts < 5 s)")
    return {"hosts": n, "first_s": first, "runs_s": runs, "median_s": median(runs), "ok_last": ok,
            "processes_stored": rows, "scan_limit": services.SCAN_LIMIT, "worker_concurrency": args.concurrency}


def main(args):
    import fleet

    from .hosts import fleet_size_possible, quiet, settle, ssh_targets

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    info = runtime.machine()
    fleet.ensure_engine()
    fleet.ensure_images()
    size, available = fleet_size_possible(max(args.fleet, 1))
    if size < args.fleet:
        print(f"only {size} hosts fit in {available / 2**30:.1f} GiB of free memory (asked {args.fleet})")
    print(f"bringing up {size} fleet hosts (load average {info['load_average_start']})…")
    started = time.perf_counter()
    run = fleet.Fleet.up(size, run_id=f"bench-{runtime.RUN_ID}", name_prefix="benchp",
                         ready_timeout=60 + 2 * size)
    runtime.cleanup.push(f"fleet {run.run_id} down", run.down)
    up_s = time.perf_counter() - started
    quiet(run)
    waited, cpu = settle()
    print(f"  up in {fmt(up_s, 1)} s; waited {fmt(waited, 0)} s for the CPUs to calm down ({fmt(cpu, 0)} % busy)")
    targets = ssh_targets(run, run.hosts)
    results = {"machine": info, "fleet_up_s": up_s, "fleet_hosts": size}
    results["local"] = local_comparison(args)
    results["remote"] = remote_comparison(run, targets[0], args)
    results["fleet_wide"] = fleet_wide(run, targets, args)
    if not args.skip_portal:
        results["portal"] = portal_scans(run, args)
    results["load_average_end"] = runtime.load_average()
    path = runtime.save_results("processes", results)
    print(f"\nresults: {Path(path).relative_to(runtime.ROOT)}")
