"""`python -m bench events`: output throughput and live delivery of job events (issue 4).

A host.command job on a local-transport host prints N numbered, timestamped lines (flushed one by
one) while C websocket clients, connected and subscribed before the output starts, read the job's
stream. Reported per repeat, then as medians over repeats:

- lines/s stored: output rows / time from the first to the last stored row (the bench polls the
  job's last_seq every 20 ms), and overall (N / time from releasing the output to every row stored);
- delay from emit to client receipt: the client's arrival time minus the event's `time` (when the
  runner read the line), p50/p99 over every line of every client; also from the time the command
  printed the line (its timestamp in the text);
- lines lost per client (every client must get seq 1..last exactly once, in order) and messages
  per client (how well output is batched);
- the machine's CPU busy (both cores, 100 % = all busy) from the gate to the last row stored and to
  the last client's last line: the producer, worker, PostgreSQL, daphne and the clients share them;
- then launch → first event on the websocket over small jobs (median, p99).

The command waits for a gate file before printing, so every client is subscribed before the first
line exists; the job itself was launched (and its `running` event sent) just before. By default it
prints as fast as it can, so the delay includes the lines waiting to be stored while the writer
catches up; `--rate N` paces it (N lines/s) to measure live delivery of a steady stream.
`--client node` runs the clients in one Node process (bench/wsclients.js) at a third of the Python
clients' CPU, so that 20 clients on two cores measure the portal more than themselves;
`--client-sample N` makes them cheaper still: every event's seq is checked, only every Nth line's
delay is read.
"""
import multiprocessing
import shlex
import time
from array import array
from pathlib import Path

from . import runtime
from .runtime import fmt, median, percentile

PRODUCER = r"""
import os, sys, time
gate, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + 300
while not os.path.exists(gate) and time.time() < end:
    time.sleep(0.005)
w, f, now = sys.stdout.write, sys.stdout.flush, time.time
start = now()
for i in range(1, n + 1):
    w("%d %.6f\n" % (i, now()))
    f()
    if rate and i % 50 == 0:  # paced: i lines by start + i / rate
        ahead = start + i / rate - now()
        if ahead > 0:
            time.sleep(ahead)
"""


def add_arguments(parser):
    parser.add_argument("--lines", type=int, default=100_000, help="output lines per job (100000)")
    parser.add_argument("--clients", type=int, default=20, help="websocket clients (20)")
    parser.add_argument("--rate", type=float, default=0,
                        help="lines per second the command prints (0: as fast as it can, the default)")
    parser.add_argument("--client-procs", type=int, default=2, help="processes the clients are spread over (2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the big job (3)")
    parser.add_argument("--small-jobs", type=int, default=20, help="small jobs for launch → first event (20)")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency (2)")
    parser.add_argument("--client", choices=("python", "node"), default="python",
                        help="the websocket clients: Python (websockets) or Node (bench/wsclients.js, cheaper)")
    parser.add_argument("--client-sample", type=int, default=1,
                        help="with --client node: read the delay of every Nth line only (every seq is still "
                             "checked); 1, the default, reads every line")


def _tree_cpu(pid):
    import psutil

    try:
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0.0


def _machine_cpu():
    import psutil

    times = psutil.cpu_times()
    return sum(times), times.idle + getattr(times, "iowait", 0.0)


def _busy(before, after):
    total, idle = after[0] - before[0], after[1] - before[1]
    return round(100.0 * (total - idle) / total, 1) if total > 0 else None


def big_job(args, actor, environment, web, worker, number):
    from ops_portal.jobs.choices import EventKind
    from ops_portal.jobs.launch import launch_adhoc
    from ops_portal.jobs.models import Job, JobEvent

    gate = Path(f"/tmp/opsportal-bench-gate-{runtime.RUN_ID}-{number}")
    gate.unlink(missing_ok=True)
    runtime.cleanup.push("gate file", gate.unlink, True)
    command = f"python3 -c {shlex.quote(PRODUCER)} {shlex.quote(str(gate))} {args.lines} {args.rate}"
    launched = time.time()
    job = launch_adhoc(actor, environment=environment, action="host.command",
                                values={"command": command}, selector={"all": True},
                                name=f"bench events {number}")
    ctx = multiprocessing.get_context("spawn")
    ready_q, result_q = ctx.Queue(), ctx.Queue()
    from .wsclients import run_clients, run_node_clients

    procs = []
    per_proc = [args.clients // args.client_procs + (1 if i < args.clients % args.client_procs else 0)
                for i in range(args.client_procs)]
    first = 0
    timeout = 240
    for count in per_proc:
        if not count:
            continue
        target = run_node_clients if args.client == "node" else run_clients
        extra = (args.client_sample,) if args.client == "node" else ()
        p = ctx.Process(target=target, args=(first, count, web.ws_url, args.key, web.url, job.pk, ready_q,
                                                  result_q, timeout, *extra), daemon=True)
        p.start()
        runtime.cleanup.push("client process", lambda p=p: p.is_alive() and p.kill())
        procs.append(p)
        first += count
    ready = set()
    deadline = time.monotonic() + 60
    while len(ready) < args.clients:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ready)} of {args.clients} clients subscribed within 60 s")
        try:
            ready.add(ready_q.get(timeout=1))
        except Exception:  # queue.Empty
            if not all(p.is_alive() for p in procs) and result_q.empty():
                raise RuntimeError("a client process died before subscribing") from None
    seq_before = Job.objects.filter(pk=job.pk).values_list("last_seq", flat=True).get()
    cpu_before = {"worker": _tree_cpu(worker.pid), "web": _tree_cpu(web.pid)}
    load_before = runtime.load_average()
    sampler = runtime.TreeSampler(worker.pid).__enter__()
    runtime.cleanup.push("rss sampler", sampler.__exit__)
    machine_before = _machine_cpu()
    gate.touch()
    opened = time.time()
    # The storage timeline: the job's last_seq, polled every 20 ms.
    first_stored = all_stored = None
    target_seq = seq_before + args.lines
    final = None
    while True:
        seq, state = Job.objects.filter(pk=job.pk).values_list("last_seq", "state").get()
        now = time.time()
        if first_stored is None and seq > seq_before:
            first_stored = now
        if all_stored is None and seq >= target_seq:
            all_stored = now
            machine_stored = _machine_cpu()
        if state in ("succeeded", "failed", "canceled", "timed_out", "lost"):
            final = state
            finished = now
            break
        if now - opened > timeout:
            raise RuntimeError(f"job {job.pk} still {state} after {timeout}s (last_seq {seq})")
        time.sleep(0.02)
    sampler.__exit__()
    results = [result_q.get(timeout=timeout) for _ in procs]
    machine_received = _machine_cpu()
    for p in procs:
        p.join(10)
    cpu_after = {"worker": _tree_cpu(worker.pid), "web": _tree_cpu(web.pid)}
    gate.unlink(missing_ok=True)
    summaries, read_delays, print_delays = [], array("d"), array("d")
    for s, r, pr in results:
        summaries.extend(s)
        read_delays.frombytes(r)
        print_delays.frombytes(pr)
    job = Job.objects.get(pk=job.pk)
    outputs = JobEvent.objects.filter(job=job, kind=EventKind.OUTPUT)
    stored_lines = outputs.count()
    read_first = outputs.order_by("seq").values_list("time", flat=True).first()
    read_last = outputs.order_by("-seq").values_list("time", flat=True).first()
    texts = outputs.order_by("seq").values_list("text", flat=True)
    printed_first = float(texts.first().split()[1])
    printed_last = float(texts.last().split()[1])
    read_sorted, print_sorted = sorted(read_delays), sorted(print_delays)
    errors = [s["error"] for s in summaries if s["error"]]
    lost = [args.lines - s["output_lines"] + s["line_errors"] for s in summaries]
    messages = [s["messages"] for s in summaries]
    result = {
        "job": job.pk, "state": final, "lines": args.lines, "stored_lines": stored_lines,
        "last_seq": job.last_seq,
        "stored_per_s_streaming": (args.lines - 1) / (all_stored - first_stored) if all_stored and
        all_stored > first_stored else None,
        "stored_per_s_overall": args.lines / (all_stored - opened) if all_stored else None,
        "gate_to_first_stored_s": first_stored - opened if first_stored else None,
        "gate_to_all_stored_s": all_stored - opened if all_stored else None,
        "launch_to_finished_s": finished - launched,
        "printed_per_s": (args.lines - 1) / (printed_last - printed_first) if printed_last > printed_first else None,
        "read_per_s": (args.lines - 1) / (read_last - read_first).total_seconds()
        if read_last and read_last > read_first else None,
        "delay_read_to_client_p50_ms": percentile(read_sorted, 50, True) * 1000,
        "delay_read_to_client_p99_ms": percentile(read_sorted, 99, True) * 1000,
        "delay_read_to_client_max_ms": (read_sorted[-1] if read_sorted else float("nan")) * 1000,
        "delay_print_to_client_p50_ms": percentile(print_sorted, 50, True) * 1000,
        "delay_print_to_client_p99_ms": percentile(print_sorted, 99, True) * 1000,
        "delivered_lines_total": len(read_delays),
        "gate_to_last_receipt_s": max(s["last_recv"] for s in summaries if s["last_recv"]) - opened,
        "lost_lines_per_client_max": max(lost) if lost else None,
        "gaps_total": sum(s["gaps"] for s in summaries),
        "duplicates_total": sum(s["duplicates"] for s in summaries),
        "clients_complete": sum(1 for s in summaries if s["last_seq"] == job.last_seq and not s["gaps"]
                                and not s["duplicates"] and s["output_lines"] == args.lines
                                and not s["line_errors"]),
        "messages_per_client_median": median(messages), "messages_per_client_min": min(messages),
        "messages_per_client_max": max(messages),
        "lines_per_message": args.lines / median(messages) if messages and median(messages) else None,
        "client_errors": errors,
        "cpu_s": {**{k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_before},
                  "clients": round(sum(s.get("process_cpu_s", 0) for s in summaries), 2)},
        "worker_rss_mib": {"before": round(sampler.baseline / 2**20, 1), "peak": round(sampler.peak / 2**20, 1)},
        "load_average": load_before,
        # Both cores together, 100 = every core busy: from the gate to the last row stored, and to
        # the last client's last line.
        "machine_busy_percent": {"to_all_stored": _busy(machine_before, machine_stored) if all_stored else None,
                                 "to_last_receipt": _busy(machine_before, machine_received)},
    }
    return result


def small_jobs(args, actor, environment, web):
    """Launch → first event on an open websocket, for `args.small_jobs` small jobs one after another."""
    import json

    from websockets.sync.client import connect

    from ops_portal.jobs.launch import launch_adhoc

    samples = []
    with connect(web.ws_url, additional_headers={"Authorization": f"Token {args.key}"}, origin=web.url,
                 max_size=None) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        for number in range(args.small_jobs):
            t0 = time.time()
            job = launch_adhoc(actor, environment=environment, action="host.command",
                                        values={"command": "echo hello"}, selector={"all": True},
                                        name=f"bench small {number}")
            launched = time.time()
            sub = f"s{number}"
            ws.send(json.dumps({"action": "subscribe", "id": sub, "stream": "job", "params": {"job": job.pk},
                                "since": 0}))
            first_event = first_output = done = None
            deadline = time.monotonic() + 60
            while done is None:
                message = json.loads(ws.recv(max(0.1, deadline - time.monotonic())))
                now = time.time()
                if message.get("type") != "events" or message.get("id") != sub:
                    continue
                for item in message["items"]:
                    if first_event is None:
                        first_event = now
                    if item["kind"] == "output" and first_output is None:
                        first_output = now
                    if item["kind"] == "state" and item["data"]["state"] not in ("running",):
                        done = now
            ws.send(json.dumps({"action": "unsubscribe", "id": sub}))
            samples.append({"launch_call_s": launched - t0, "first_event_s": first_event - t0,
                            "first_output_s": first_output - t0, "finished_event_s": done - t0})
            time.sleep(0.2)  # the job's lease is released on commit; let the dispatcher settle
    return samples


def main(args):
    import shutil

    import django.db

    if args.client == "node" and shutil.which("node") is None:
        raise SystemExit("--client node needs Node.js (Debian: apt-get install nodejs)")
    runtime.setup_django()
    actor, key, environment = runtime.bench_user()
    args.key = key
    from ops_portal.inventory.choices import Transport
    from ops_portal.inventory.models import Host

    Host.objects.create(name=f"{runtime.NAME_PREFIX}{runtime.RUN_ID}-local", address="127.0.0.1",
                        transport=Transport.LOCAL, environment=environment)
    info = runtime.machine()
    web = runtime.start_web()
    worker = runtime.start_worker(args.concurrency)
    print(f"daphne {web.url} (pid {web.pid}), celery worker {worker.hostname} (pid {worker.pid}, "
          f"concurrency {args.concurrency}); load average {info['load_average_start']}")
    # One warm-up job so imports and connections are not in the first measured run.
    from ops_portal.jobs.launch import launch_adhoc

    warm = launch_adhoc(actor, environment=environment, action="host.command",
                                 values={"command": "seq 1 1000"}, selector={"all": True}, name="bench warm-up")
    runtime.wait_job(warm.pk, 60)
    runs = []
    for number in range(1, args.repeats + 1):
        result = big_job(args, actor, environment, web, worker, number)
        runs.append(result)
        print(f"run {number}: {result['state']}, stored {result['stored_lines']} lines, "
              f"{fmt(result['stored_per_s_streaming'], 0)} lines/s streaming, "
              f"{fmt(result['stored_per_s_overall'], 0)} lines/s overall; delay p50 "
              f"{fmt(result['delay_read_to_client_p50_ms'], 0)} ms, p99 {fmt(result['delay_read_to_client_p99_ms'], 0)}"
              f" ms; lost per client max {result['lost_lines_per_client_max']}; "
              f"{result['clients_complete']}/{args.clients} clients complete; "
              f"{fmt(result['messages_per_client_median'], 0)} messages per client; all stored "
              f"{fmt(result['gate_to_all_stored_s'])} s and last receipt {fmt(result['gate_to_last_receipt_s'])} s "
              f"after the gate opened; CPU s {result['cpu_s']}; "
              f"worker RSS {result['worker_rss_mib']} MiB; machine CPU busy "
              f"{result['machine_busy_percent']['to_all_stored']} % until all stored, "
              f"{result['machine_busy_percent']['to_last_receipt']} % until the last receipt; "
              f"load {result['load_average']}")
        if result["client_errors"]:
            print("  client errors:", result["client_errors"][:3])
        django.db.close_old_connections()
    small = small_jobs(args, actor, environment, web)
    first = [s["first_event_s"] * 1000 for s in small]
    first_out = [s["first_output_s"] * 1000 for s in small]
    finished = [s["finished_event_s"] * 1000 for s in small]
    summary = {
        "machine": info, "args": {k: v for k, v in vars(args).items() if k not in ("key", "func")},
        "runs": runs, "small_jobs": small,
        "median": {name: median([r[name] for r in runs if r[name] is not None]) for name in (
            "stored_per_s_streaming", "stored_per_s_overall", "printed_per_s", "read_per_s",
            "delay_read_to_client_p50_ms", "delay_read_to_client_p99_ms", "delay_print_to_client_p50_ms",
            "delay_print_to_client_p99_ms", "messages_per_client_median", "launch_to_finished_s",
            "gate_to_first_stored_s", "gate_to_all_stored_s", "gate_to_last_receipt_s")},
        "lost_lines_per_client_max": max(r["lost_lines_per_client_max"] for r in runs),
        "clients_complete_min": min(r["clients_complete"] for r in runs),
        "small": {"first_event_p50_ms": median(first), "first_event_p99_ms": percentile(first, 99),
                  "first_output_p50_ms": median(first_out), "first_output_p99_ms": percentile(first_out, 99),
                  "finished_p50_ms": median(finished), "finished_p99_ms": percentile(finished, 99)},
        "load_average_end": runtime.load_average(),
    }
    path = runtime.save_results("events", summary)
    m, s = summary["median"], summary["small"]
    goal = 10_000
    print()
    paced = f" at {args.rate:g} lines/s" if args.rate else ""
    print(f"events: {args.lines} lines{paced} to {args.clients} clients, median of {args.repeats} runs "
          f"(load average {info['load_average_start']} → {summary['load_average_end']})")
    print(f"  stored            {fmt(m['stored_per_s_streaming'], 0)} lines/s while streaming, "
          f"{fmt(m['stored_per_s_overall'], 0)} lines/s overall "
          f"(goal {goal}: {fmt(m['stored_per_s_streaming'] / goal)}x)")
    print(f"  producer          {fmt(m['printed_per_s'], 0)} lines/s printed, "
          f"{fmt(m['read_per_s'], 0)} read by the runner")
    print(f"  delay read→client p50 {fmt(m['delay_read_to_client_p50_ms'], 0)} ms, p99 "
          f"{fmt(m['delay_read_to_client_p99_ms'], 0)} ms (goal p99 < 500 ms: "
          f"{fmt(m['delay_read_to_client_p99_ms'] / 500)}x)")
    print(f"  delay print→client p50 {fmt(m['delay_print_to_client_p50_ms'], 0)} ms, p99 "
          f"{fmt(m['delay_print_to_client_p99_ms'], 0)} ms")
    print(f"  lost lines per client (max over runs) {summary['lost_lines_per_client_max']}; clients complete "
          f"(min over runs) {summary['clients_complete_min']}/{args.clients}")
    print(f"  all stored {fmt(m['gate_to_all_stored_s'])} s, last line at the last client "
          f"{fmt(m['gate_to_last_receipt_s'])} s after the output started")
    print(f"  messages per client {fmt(m['messages_per_client_median'], 0)} "
          f"({fmt(args.lines / m['messages_per_client_median'], 0)} lines per message)")
    print(f"  launch → first event {fmt(s['first_event_p50_ms'], 0)} ms p50, {fmt(s['first_event_p99_ms'], 0)} ms p99;"
          f" first output line {fmt(s['first_output_p50_ms'], 0)} / {fmt(s['first_output_p99_ms'], 0)} ms; "
          f"finished {fmt(s['finished_p50_ms'], 0)} / {fmt(s['finished_p99_ms'], 0)} ms "
          f"({args.small_jobs} jobs)")
    print(f"  results: {path}")
    return summary

