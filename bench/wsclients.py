"""Websocket clients of the events benchmark, run in processes of their own (Django-free).

Each client connects to /ws/ with a token, subscribes to one job's stream from seq 0 and reads
until the job's final state event. It stamps each message with time.time() as soon as it
arrives, before parsing, and checks that it saw every seq once and in order.
"""
import asyncio
import json
import re
import time
from array import array
from pathlib import Path

# Event frames are read with regular expressions rather than json.loads: building 2,000,000 dicts
# cost the clients more CPU than the server spent sending them, on the same two cores. Every event
# carries seq, kind, time and text, in that order, so the four lists line up.
SEQ = re.compile(r'"seq":\s*(\d+)')
KIND = re.compile(r'"kind":\s*"(\w+)"')
TIME = re.compile(r'"time":\s*([0-9.eE+-]+)')
TEXT = re.compile(r'"text":\s*"((?:[^"\\]|\\.)*)"')

FINISHED = {"succeeded", "failed", "canceled", "timed_out", "lost", "rejected", "expired"}


async def _client(index, url, token, origin, job_id, ready, timeout):
    from websockets.asyncio.client import connect

    stats = {"client": index, "messages": 0, "items": 0, "gaps": 0, "duplicates": 0, "out_of_order": 0,
             "output_lines": 0, "line_errors": 0, "last_seq": 0, "final_state": None, "first_recv": None,
             "last_recv": None, "error": ""}
    read_delays, print_delays = array("d"), array("d")
    try:
        async with connect(url, additional_headers={"Authorization": f"Token {token}"}, origin=origin,
                           max_size=None, open_timeout=30, ping_interval=None) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if hello.get("type") != "hello":
                raise RuntimeError(f"unexpected greeting {hello}")
            await ws.send(json.dumps({"action": "subscribe", "id": "j", "stream": "job",
                                      "params": {"job": job_id}, "since": 0}))
            expected = {"seq": 1, "line": 1}
            deadline = time.monotonic() + timeout
            subscribed = False
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                now = time.time()
                if raw.startswith(('{"type":"events"', '{"type": "events"')):
                    if not subscribed:
                        raise RuntimeError("events before the subscription was confirmed")
                    done = _events(raw, now, stats, read_delays, print_delays, expected)
                    if done:
                        break
                    continue
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "subscribed":
                    subscribed = True
                    ready(index)
                elif kind == "error":
                    raise RuntimeError(f"subscription refused: {message}")
    except Exception as exc:
        stats["error"] = f"{type(exc).__name__}: {exc}"
    return stats, read_delays, print_delays


def _events(raw, now, stats, read_delays, print_delays, expected):
    """Check one events frame; return True when it holds the job's final state."""
    stats["messages"] += 1
    if stats["first_recv"] is None:
        stats["first_recv"] = now
    stats["last_recv"] = now
    seqs = [int(v) for v in SEQ.findall(raw)]
    kinds = KIND.findall(raw)
    times = TIME.findall(raw)
    texts = TEXT.findall(raw)
    if not (len(seqs) == len(kinds) == len(times) == len(texts)):
        raise RuntimeError("an events frame the bench cannot read (fields missing)")
    stats["items"] += len(seqs)
    first = expected["seq"]
    if seqs == list(range(first, first + len(seqs))):
        expected["seq"] = first + len(seqs)
    else:
        for seq in seqs:
            if seq == expected["seq"]:
                expected["seq"] += 1
            elif seq > expected["seq"]:
                stats["gaps"] += seq - expected["seq"]
                expected["seq"] = seq + 1
            else:
                stats["duplicates"] += 1
    stats["last_seq"] = expected["seq"] - 1
    outputs = [i for i, kind in enumerate(kinds) if kind == "output" and texts[i][:1].isdigit()]
    fields = [texts[i].split(" ", 1) for i in outputs]
    numbers = [int(f[0]) for f in fields]
    stats["output_lines"] += len(numbers)
    line = expected["line"]
    if numbers == list(range(line, line + len(numbers))):
        expected["line"] = line + len(numbers)
    else:
        for number in numbers:
            if number != expected["line"]:
                stats["line_errors"] += 1
            expected["line"] = number + 1
    read_delays.extend([now - float(times[i]) for i in outputs])
    print_delays.extend([now - float(f[1]) for f in fields])
    if "state" in kinds:
        for item in json.loads(raw)["items"]:
            if item["kind"] == "state" and (item.get("data") or {}).get("state") in FINISHED:
                stats["final_state"] = item["data"]["state"]
                return True
    return False


def run_clients(first_index, count, url, token, origin, job_id, ready_queue, result_queue, timeout):
    """Entry point of a client process: `count` clients in one asyncio loop."""

    def ready(index):
        ready_queue.put(index)

    async def main():
        return await asyncio.gather(*(_client(first_index + i, url, token, origin, job_id, ready, timeout)
                                      for i in range(count)))

    results = asyncio.run(main())
    cpu = time.process_time()
    summaries = []
    read_all, print_all = array("d"), array("d")
    for stats, read_delays, print_delays in results:
        stats["process_cpu_s"] = cpu / count  # the process's CPU time, shared out over its clients
        summaries.append(stats)
        read_all.extend(read_delays)
        print_all.extend(print_delays)
    result_queue.put((summaries, read_all.tobytes(), print_all.tobytes()))


NODE_CLIENTS = Path(__file__).with_name("wsclients.js")


def run_node_clients(first_index, count, url, token, origin, job_id, ready_queue, result_queue, timeout, sample=1):
    """Entry point of a client process with `--client node`: `count` clients in one Node process
    (wsclients.js); this process only relays its lines. Same results as run_clients; with sample N
    the delays of every Nth line (by seq) only, every seq still checked."""
    import os
    import subprocess
    import tempfile

    fd, delays_path = tempfile.mkstemp(prefix="opsportal-bench-delays-")
    os.close(fd)
    try:
        proc = subprocess.Popen(["node", str(NODE_CLIENTS), str(first_index), str(count), url, token, origin,
                                 str(job_id), str(timeout), delays_path, str(sample)], stdout=subprocess.PIPE,
                                text=True)
        summaries = None
        for line in proc.stdout:
            if line.startswith("ready "):
                ready_queue.put(int(line.split()[1]))
            elif line.startswith("{"):
                summaries = json.loads(line)["summaries"]
        proc.wait()
        if summaries is None:
            raise RuntimeError(f"the Node clients ended ({proc.returncode}) without results")
        pairs = array("d")
        with open(delays_path, "rb") as f:
            pairs.frombytes(f.read())
        result_queue.put((summaries, pairs[0::2].tobytes(), pairs[1::2].tobytes()))
    finally:
        os.unlink(delays_path)
