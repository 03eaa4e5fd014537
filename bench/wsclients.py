"""Websocket clients of the events benchmark, run in processes of their own (Django-free).

Each client connects to /ws/ with a token, subscribes to one job's stream from seq 0 and reads
until the job's final state event. It stamps each message with time.time() as soon as it
arrives, before parsing, and checks that it saw every seq once and in order.
"""
import asyncio
import json
import time
from array import array

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
            expected_seq, expected_line = 1, 1
            deadline = time.monotonic() + timeout
            subscribed = False
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                now = time.time()
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "subscribed":
                    subscribed = True
                    ready(index)
                    continue
                if kind == "error":
                    raise RuntimeError(f"subscription refused: {message}")
                if kind != "events":
                    continue
                if not subscribed:
                    raise RuntimeError("events before the subscription was confirmed")
                stats["messages"] += 1
                if stats["first_recv"] is None:
                    stats["first_recv"] = now
                stats["last_recv"] = now
                done = False
                for item in message["items"]:
                    stats["items"] += 1
                    seq = item["seq"]
                    if seq == expected_seq:
                        expected_seq += 1
                    elif seq > expected_seq:
                        stats["gaps"] += seq - expected_seq
                        expected_seq = seq + 1
                    elif seq < expected_seq:
                        stats["duplicates"] += 1
                    if item["kind"] == "output":
                        number, _, printed = item["text"].partition(" ")
                        if number.isdigit():
                            stats["output_lines"] += 1
                            if int(number) != expected_line:
                                stats["line_errors"] += 1
                            expected_line = int(number) + 1
                            read_delays.append(now - item["time"])
                            print_delays.append(now - float(printed))
                    elif item["kind"] == "state" and (item.get("data") or {}).get("state") in FINISHED:
                        stats["final_state"] = item["data"]["state"]
                        done = True
                stats["last_seq"] = expected_seq - 1
                if done:
                    break
    except Exception as exc:
        stats["error"] = f"{type(exc).__name__}: {exc}"
    return stats, read_delays, print_delays


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
