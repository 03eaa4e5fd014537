"""Processes and scans for the processes app's tests: each helper makes exactly what it says."""
import time

from schedulers.process.inventory import Proc, Snapshot


def proc(pid, name="worker", *, ppid=1, started=1_700_000_000.0, cpu=0.0, rss=10_000_000, owner=None, main=False,
         ports=(), state="S", user="root", cmdline=None):
    return Proc(pid=pid, ppid=ppid, user=user, name=name, cmdline=cmdline or [f"/usr/bin/{name}", "--serve"],
                state=state, cpu_time=1.0, cpu_percent=cpu, rss=rss, threads=1, fds=4, started_at=started,
                ports=list(ports), owner=owner, main=main)


def snapshot(procs, *, at=None, boot=1_699_000_000.0, host="h"):
    return Snapshot(host=host, collected_at=at or time.time(), boot_time=boot, source="proc", cpu_basis="lifetime",
                    container="", processes=list(procs), elapsed=0.05, payload_bytes=1234)
