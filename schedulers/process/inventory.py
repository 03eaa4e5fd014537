"""Process inventory: what runs on a host, who owns it, and what changed since the last scan.

`scan_local()` reads the portal's own machine in this process; `scan(shell)` sends
remote/collector.py to a host through a Shell (one round trip, python3 only) and reads its compact
gzip + base64 answer. Both give a Snapshot. Both read /proc on Linux (the faster reader, the same
fields) and psutil where there is no Linux /proc, or when asked for with use_psutil=True.

CPU %: a scan reports the average since each process started (as `ps` does) unless it samples
twice (`interval`, seconds) or is given the previous snapshot of the host (`previous`), from
which the CPU used between the two scans is taken; Snapshot.cpu_basis says which.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources

from ..base import BackendError, CancelToken
from .base import ProcessError, Shell
from .remote import collector
from .shells import decode_payload, python_argv

START_TOLERANCE = 0.05  # seconds: start times are rounded to 10 ms on the host


@dataclass
class Proc:
    pid: int
    ppid: int
    user: str
    name: str
    cmdline: list
    state: str  # the kernel's letter: R S D T t Z I …
    cpu_time: float  # seconds, user + system
    cpu_percent: float
    rss: int  # bytes
    threads: int
    fds: int | None  # None when the scan could not read them (another user's process)
    started_at: float
    ports: list  # [(address, port)] listening TCP sockets
    owner: tuple | None = None  # ("supervisord" | "pm2" | "systemd" | "container", name)
    main: bool = False  # the manager's direct child: the program's own process
    container: str = ""  # a container the process runs in, unless the whole host runs in that one

    @property
    def key(self):
        return self.pid, self.started_at

    @property
    def command(self):
        return " ".join(self.cmdline) if self.cmdline else f"[{self.name}]"


@dataclass
class Snapshot:
    host: str
    collected_at: float
    boot_time: float
    source: str  # "psutil" | "proc"
    cpu_basis: str  # "lifetime" | "interval" | "delta"
    container: str  # the container the whole host runs in, or ""
    processes: list = field(default_factory=list)
    elapsed: float = 0.0  # seconds the scan took, round trip included
    payload_bytes: int = 0  # what came back over the Shell (0 for scan_local)

    def by_pid(self):
        return {proc.pid: proc for proc in self.processes}

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        procs = []
        for item in data.pop("processes", []):
            item = dict(item)
            item["ports"] = [tuple(port) for port in item.get("ports", [])]
            item["owner"] = tuple(item["owner"]) if item.get("owner") else None
            procs.append(Proc(**item))
        return cls(processes=procs, **data)


@dataclass
class Diff:
    new: list  # [Proc]
    gone: list  # [Proc]
    restarted: list  # [(old Proc, new Proc)]

    def __bool__(self):
        return bool(self.new or self.gone or self.restarted)


@cache
def collector_source():
    return resources.files(__package__).joinpath("remote/collector.py").read_text(encoding="utf-8")


def _snapshot(host, document, *, elapsed=0.0, payload_bytes=0):
    if document.get("v") != 1:
        raise ProcessError(f"the process collector on {host} answered in an unknown format")
    index = {name: i for i, name in enumerate(document["k"])}

    def get(row, name):
        return row[index[name]]

    procs = [Proc(pid=get(r, "p"), ppid=get(r, "pp"), user=get(r, "u"), name=get(r, "n"), cmdline=get(r, "c"),
                  state=get(r, "s"), cpu_time=get(r, "ct"), cpu_percent=get(r, "cp"), rss=get(r, "r"),
                  threads=get(r, "th"), fds=get(r, "fd"), started_at=get(r, "st"),
                  ports=[tuple(port) for port in get(r, "l")],
                  owner=tuple(get(r, "o")) if get(r, "o") else None, main=bool(get(r, "m")),
                  container=get(r, "ci")) for r in document["r"]]
    procs.sort(key=lambda proc: proc.pid)
    return Snapshot(host=host, collected_at=document["t"], boot_time=document["bt"], source=document["src"],
                    cpu_basis=document["cpu"], container=document["ci"], processes=procs, elapsed=elapsed,
                    payload_bytes=payload_bytes)


def scan_local(*, interval: float = 0.0, previous: Snapshot | None = None, use_psutil: bool | None = None,
               host: str = "localhost") -> Snapshot:
    """Scan the portal's own machine in this process (use_psutil: None /proc on Linux, True psutil, False /proc)."""
    started = time.monotonic()
    snapshot = _snapshot(host, collector.collect(use_psutil, interval))
    snapshot.elapsed = time.monotonic() - started
    return cpu_since(previous, snapshot) if previous is not None else snapshot


def scan(shell: Shell, *, interval: float = 0.0, previous: Snapshot | None = None, use_psutil: bool | None = None,
         python: str = "python3", timeout: float = 60.0, cancel: CancelToken | None = None) -> Snapshot:
    """Scan a host through its Shell in one round trip; ProcessError in plain words when it cannot."""
    if not isinstance(interval, int | float) or not 0 <= interval <= 10:
        raise ValueError("interval must be between 0 and 10 seconds")
    args = ["--interval", f"{interval:g}"] if interval else []
    if use_psutil is not None:
        args.append("--psutil" if use_psutil else "--no-psutil")
    started = time.monotonic()
    # The collector starts no process: no sweep of its session after it exits (a second full scan).
    result = shell.run(python_argv(collector_source(), *args, python=python), timeout=timeout, cancel=cancel,
                       sweep=False)
    elapsed = time.monotonic() - started
    if result.exit_code == 127:
        raise ProcessError(f"cannot list the processes of {shell.name}: {python} is not installed there")
    if not result.ok:
        detail = result.stderr.decode("utf-8", "replace").strip()[-500:] or f"exit {result.exit_code}"
        raise ProcessError(f"listing the processes of {shell.name} failed: {detail}")
    try:
        document = decode_payload(result.text())
    except (ValueError, OSError, EOFError) as exc:
        raise ProcessError(f"the process list of {shell.name} could not be read: {exc}")
    snapshot = _snapshot(shell.name, document, elapsed=elapsed, payload_bytes=len(result.stdout))
    return cpu_since(previous, snapshot) if previous is not None else snapshot


def scan_many(shells: list, *, workers: int = 16, **options) -> dict:
    """Scan many hosts in parallel: {host name: Snapshot or the error in plain words}."""
    def one(shell):
        try:
            return shell.name, scan(shell, **options)
        except (BackendError, ValueError) as exc:
            return shell.name, str(exc)

    if not shells:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(shells)))) as pool:
        return dict(pool.map(one, shells))


def cpu_since(previous: Snapshot, current: Snapshot) -> Snapshot:
    """Set current's CPU % from the CPU time used since previous (same host, not rebooted)."""
    interval = current.collected_at - previous.collected_at
    if interval <= 0 or abs(current.boot_time - previous.boot_time) > 1:
        return current
    before = {proc.key: proc.cpu_time for proc in previous.processes}
    for proc in current.processes:
        used = proc.cpu_time - before.get(proc.key, 0.0)
        span = min(interval, max(current.collected_at - proc.started_at, 0.01))
        proc.cpu_percent = round(max(used, 0.0) * 100.0 / span, 1)
    current.cpu_basis = "delta"
    return current


def diff(previous: Snapshot, current: Snapshot) -> Diff:
    """New, gone and restarted processes between two snapshots of one host.

    Restarted: the same pid with a new start time and the same name, or a program's main
    process (owned by supervisord, PM2 or systemd) gone and another with the same owner new.
    """
    old, now = previous.by_pid(), current.by_pid()
    new, gone, restarted = [], [], []
    for pid, proc in now.items():
        before = old.get(pid)
        if before is None:
            new.append(proc)
        elif abs(before.started_at - proc.started_at) > START_TOLERANCE:
            if before.name == proc.name:
                restarted.append((before, proc))
            else:
                gone.append(before)
                new.append(proc)
    gone.extend(proc for pid, proc in old.items() if pid not in now)
    by_owner = {}
    for proc in sorted(gone, key=lambda p: p.started_at):
        if proc.main and proc.owner and proc.owner[0] != "container":
            by_owner.setdefault(proc.owner, []).append(proc)
    for proc in sorted(new, key=lambda p: p.started_at):
        candidates = by_owner.get(proc.owner) if proc.main else None
        if candidates:
            before = candidates.pop(0)
            restarted.append((before, proc))
            gone.remove(before)
            new.remove(proc)
    return Diff(new=new, gone=gone, restarted=restarted)


@dataclass
class Node:
    proc: Proc
    children: list = field(default_factory=list)


def tree(snapshot: Snapshot) -> list[Node]:
    """The process tree: the roots (parent not in the snapshot), children ordered by pid."""
    nodes = {proc.pid: Node(proc) for proc in snapshot.processes}
    roots = []
    for proc in snapshot.processes:
        parent = nodes.get(proc.ppid) if proc.ppid != proc.pid else None
        (parent.children if parent is not None else roots).append(nodes[proc.pid])
    return roots


def top(snapshot: Snapshot, *, by: str = "cpu", n: int = 10) -> list[Proc]:
    """The n processes using the most CPU (by="cpu") or memory (by="memory", RSS)."""
    keys = {"cpu": lambda p: (p.cpu_percent, p.cpu_time), "memory": lambda p: p.rss}
    if by not in keys:
        raise ValueError("by must be 'cpu' or 'memory'")
    return sorted(snapshot.processes, key=keys[by], reverse=True)[:n]


def select(snapshot: Snapshot, *, text: str = "", user: str = "", state: str = "", owner_kind: str = "",
           owner: str = "", port: int | None = None) -> list[Proc]:
    """Processes matching every filter given: text in the command line or name (case-insensitive),
    user, state letter, owner kind and name, a listening port."""
    needle = text.lower()
    found = []
    for proc in snapshot.processes:
        if needle and needle not in proc.command.lower() and needle not in proc.name.lower():
            continue
        if (user and proc.user != user) or (state and proc.state != state):
            continue
        if owner_kind and (not proc.owner or proc.owner[0] != owner_kind):
            continue
        if owner and (not proc.owner or proc.owner[1] != owner):
            continue
        if port is not None and all(p != port for _, p in proc.ports):
            continue
        found.append(proc)
    return found
