"""Runs ON a host (sent as `python3 -c`): list its processes, compact, as gzip + base64 JSON.

Needs only python3 (3.6 or later). psutil is used when it can be imported (and --no-psutil is
not given), /proc otherwise; both give the same fields. The portal imports this module to scan
its own machine (`collect()`), so the two paths are one code.

Usage: collector.py [--no-psutil] [--interval SECONDS] [--raw]

Output: a line "OPSPORTAL-PAYLOAD", then base64 lines of gzip(JSON), or the JSON itself with
--raw. The document: {"v": 1, "src": "psutil"|"proc", "t": unix time, "bt": boot time,
"cpu": "interval"|"lifetime", "ci": container id of the host's PID 1 or "", "k": [field names],
"r": [[values in the order of "k"], ...]}. Fields: see FIELDS.

Arguments longer than MAX_ARG characters are cut (marked "...[N more]"); the collector run as a
script leaves itself out.

Owners: a direct child of supervisord is a supervisord program (its name from the child's
environment, SUPERVISOR_GROUP_NAME:SUPERVISOR_PROCESS_NAME), a direct child of the PM2 God daemon
a PM2 app (environment `name`), both inherited by their descendants; else a container when the
process's cgroup names one other than PID 1's; else the systemd unit of its cgroup when PID 1 is
systemd. "m" is 1 for the main process of a program (the manager's direct child).
"""
# This file runs on managed hosts, which may have Python as old as 3.6: %-formatting, no
# dataclasses, no walrus. Reads use os.open/os.read: a scan reads thousands of small files.
# ruff: noqa: UP031
import base64
import gzip
import json
import os
import pwd
import re
import socket
import sys
import time

FIELDS = ["p", "pp", "u", "n", "c", "s", "ct", "cp", "r", "th", "fd", "st", "l", "o", "m", "ci"]
# pid, ppid, user, name (comm), cmdline (list), state letter, cpu seconds (user+system), cpu %,
# rss bytes, threads, open fds (None: not readable), start time, listening TCP [[address, port]],
# owner [kind, name] or None, main process of its owner (0/1), container id or "".

MAX_ARG = 1024
CONTAINER_ID = re.compile(r"(?:docker[-/]|crio-|cri-containerd-|libpod-)([0-9a-f]{64})")
UNIT = re.compile(r"/([^/]+\.(?:service|scope))$")
PSUTIL_STATES = {"running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "tracing-stop": "t",
                 "zombie": "Z", "dead": "X", "wake-kill": "K", "waking": "W", "idle": "I", "parked": "P"}


def _read(path, size=65536):
    """The whole file. procfs hands out seq files (/proc/net/tcp) a page per read, so read to EOF."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            more = os.read(fd, size)
            if not more:
                break
            chunks.append(more)
        return b"".join(chunks)
    finally:
        os.close(fd)


def boot_time():
    for line in _read("/proc/stat").split(b"\n"):
        if line.startswith(b"btime "):
            return float(line.split()[1])
    return 0.0


def _hex_address(text):
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_inodes():
    """{socket inode: [address, port]} of the listening TCP sockets of this network namespace."""
    found = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = _read(path).decode().split("\n")[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":
                address, _, port = fields[1].partition(":")
                found[fields[9]] = [_hex_address(address), int(port, 16)]
    return found


class _Users:
    def __init__(self):
        self.names = {}

    def __call__(self, uid):
        name = self.names.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self.names[uid] = name
        return name


def _fds(pid, listen):
    """(open fd count or None, listening [address, port] list) of one process."""
    base = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(base)
    except OSError:
        return None, []
    ports = []
    if listen:
        for fd in fds:
            try:
                link = os.readlink(base + "/" + fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                port = listen.get(link[8:-1])
                if port is not None and port not in ports:
                    ports.append(port)
    return len(fds), ports


def _cgroup(pid):
    try:
        return _read("/proc/%d/cgroup" % pid).decode("utf-8", "replace")
    except OSError:
        return ""


def _environ(pid, names):
    try:
        data = _read("/proc/%d/environ" % pid)
    except OSError:
        return {}
    found = {}
    for item in data.split(b"\0"):
        name, _, value = item.partition(b"=")
        if name in names:
            found[name.decode()] = value.decode("utf-8", "replace")
    return found


def kthreadd():
    """The pid of the kernel's thread parent (2) when this pid namespace sees it, else None."""
    try:
        head, _, rest = _read("/proc/2/stat").rpartition(b")")
    except OSError:
        return None
    return 2 if head.endswith(b"(kthreadd") and rest.split()[1] == b"0" else None


def scan_proc(listen, users, hz, btime):
    """Rows from /proc: [pid, ppid, user, name, cmdline, state, cpu s, rss, threads, fds, start, ports].

    Kernel threads (kthreadd and its children) have no user memory, command line or files: only
    their stat is read.
    """
    kernel = kthreadd()
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        base = "/proc/" + entry
        try:
            stat = _read(base + "/stat")
            head, _, rest = stat.rpartition(b")")
            f = rest.split()  # state ppid pgrp session tty tpgid flags 4×faults utime stime … threads … start
            ppid = int(f[1])
            if kernel is not None and kernel in (pid, ppid):
                status, args, (nfd, ports) = b"", [], (0, [])
            else:
                status = _read(base + "/status", 4096)
                args = split_cmdline(_read(base + "/cmdline"))
                nfd, ports = _fds(pid, listen)
        except OSError:
            continue  # ended while being read
        rows.append([pid, ppid, users(_status_int(status, b"\nUid:")),
                     full_name(head.partition(b"(")[2].decode("utf-8", "replace"), args),
                     args, f[0].decode(), round((int(f[11]) + int(f[12])) / hz, 2),
                     _status_int(status, b"\nVmRSS:") * 1024, int(f[17]), nfd, round(btime + int(f[19]) / hz, 2),
                     ports])
    return rows


def _status_int(status, key):
    """The first number after key in /proc/<pid>/status (kernel threads have no VmRSS: 0)."""
    at = status.find(key)
    if at < 0:
        return 0
    return int(status[at + len(key):status.find(b"\n", at + 1)].split()[0])


def split_cmdline(data):
    """Arguments as psutil splits them: on NUL, or on spaces when a process rewrote its title."""
    if not data:
        return []
    sep = b"\0" if data.endswith(b"\0") else b" "
    if data.endswith(sep):
        data = data[:-1]
    args = data.split(sep)
    if sep == b"\0" and len(args) == 1 and b" " in data:
        args = data.split(b" ")
    return [a.decode("utf-8", "replace") for a in args]


def full_name(comm, args):
    """The kernel cuts names at 15 characters; take the program's file name when it starts the same (as psutil)."""
    if len(comm) >= 15 and args:
        extended = os.path.basename(args[0])
        if extended.startswith(comm):
            return extended
    return comm


def scan_psutil(psutil, listen, users):
    """The same rows as scan_proc, the process facts read with psutil.

    Sockets come from /proc as in scan_proc: psutil.net_connections() decodes every connection
    of the machine, which costs more than the rest of the scan.
    """
    rows = []

    def get(method, default):
        try:
            return method()
        except (psutil.ZombieProcess, psutil.AccessDenied):  # a zombie has no command line, memory, …
            return default

    kernel = kthreadd()
    for proc in psutil.process_iter():
        try:
            with proc.oneshot():
                times, ppid = get(proc.cpu_times, None), proc.ppid()
                cpu_s = round(times.user + times.system, 2) if times else 0.0
                if kernel is not None and kernel in (proc.pid, ppid):  # as in scan_proc
                    rows.append([proc.pid, ppid, users(0), proc.name(), [], PSUTIL_STATES.get(proc.status(), "?"),
                                 cpu_s, 0, 1, 0, round(proc.create_time(), 2), []])
                    continue
                nfd, ports = _fds(proc.pid, listen)
                rows.append([proc.pid, ppid, users(proc.uids().real), proc.name(), get(proc.cmdline, []),
                             PSUTIL_STATES.get(proc.status(), "?"), cpu_s,
                             getattr(get(proc.memory_info, None), "rss", 0), get(proc.num_threads, 1), nfd,
                             round(proc.create_time(), 2), ports])
        except psutil.NoSuchProcess:
            continue
    return rows


def _container(cgroup, pid1_container):
    match = CONTAINER_ID.search(cgroup)
    if match and match.group(1)[:12] != pid1_container:
        return match.group(1)[:12]
    return ""


def _unit(cgroup):
    for line in cgroup.split("\n"):
        hierarchy, _, path = line.partition(":")[2].partition(":")
        if hierarchy in ("", "name=systemd"):
            match = UNIT.search(path)
            if match:
                return match.group(1)
    return None


def owners(rows):
    """Append owner, main flag and container id to each row (see the module's docstring)."""
    by_pid = {row[0]: row for row in rows}
    children = {}
    for row in rows:
        children.setdefault(row[1], []).append(row)
    pid1 = by_pid.get(1)
    pid1_cgroup = _cgroup(1)
    match = CONTAINER_ID.search(pid1_cgroup)
    pid1_container = match.group(1)[:12] if match else ""
    systemd = pid1 is not None and pid1[3] == "systemd"
    owner = {}
    main = set()
    for row in rows:
        command = " ".join(row[4])
        if row[3] == "supervisord" or (row[3].startswith("python") and "supervisord" in " ".join(row[4][:2])):
            for child in children.get(row[0], []):
                env = _environ(child[0], (b"SUPERVISOR_PROCESS_NAME", b"SUPERVISOR_GROUP_NAME"))
                name = env.get("SUPERVISOR_PROCESS_NAME", "")
                group = env.get("SUPERVISOR_GROUP_NAME", name)
                owner[child[0]] = ["supervisord", "%s:%s" % (group, name) if group != name else name]
                main.add(child[0])
        elif command.startswith("PM2 ") and "God Daemon" in command:
            for child in children.get(row[0], []):
                env = _environ(child[0], (b"name", b"pm_id"))
                owner[child[0]] = ["pm2", env.get("name", env.get("pm_id", ""))]
                main.add(child[0])
    # Descendants of a program belong to it (a shell wrapper's children, workers).
    stack = list(owner)
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            if child[0] not in owner:
                owner[child[0]] = owner[pid]
                stack.append(child[0])
    kernel = kthreadd()
    for row in rows:
        if kernel is not None and kernel in (row[0], row[1]):
            row.extend([None, 0, ""])
            continue
        cgroup = _cgroup(row[0]) if row[0] != 1 else pid1_cgroup
        found = owner.get(row[0])
        container = _container(cgroup, pid1_container)
        if found is None and container:  # before systemd: docker's containers are scope units too
            found = ["container", container]
        if found is None and systemd and row[0] != 1:
            unit = _unit(cgroup)
            if unit:
                found = ["systemd", unit]
        is_main = row[0] in main or (found is not None and found[0] == "systemd" and row[1] == 1)
        row.extend([found, 1 if is_main else 0, container])
    return pid1_container


def collect(use_psutil=True, interval=0.0, leave_out_self=False):
    """Scan this machine; return the document described in the module's docstring."""
    psutil = None
    if use_psutil:
        try:
            import psutil  # noqa: PLC0415 — optional on the scanned host; /proc is the fallback
        except ImportError:
            psutil = None
    hz = os.sysconf("SC_CLK_TCK")
    btime = boot_time()
    users = _Users()

    def scan():
        listen = listening_inodes()
        return scan_psutil(psutil, listen, users) if psutil else scan_proc(listen, users, hz, btime)

    first = scan() if interval > 0 else None
    started = time.time()
    if first is not None:
        time.sleep(interval)
    rows = scan()
    now = time.time()
    if leave_out_self:
        me = os.getpid()
        rows = [row for row in rows if row[0] != me]
    for row in rows:
        args = row[4]
        while args and args[-1] == "":  # titles padded with NULs (redis, nginx)
            args.pop()
        for i, arg in enumerate(args):
            if len(arg) > MAX_ARG:  # inline scripts (sh -c, python -c) would dominate the answer
                args[i] = arg[:MAX_ARG] + "...[%d more]" % (len(arg) - MAX_ARG)
        row[11].sort()
    before = {(r[0], r[10]): r[6] for r in first} if first is not None else {}
    for row in rows:
        cpu_s, start = row[6], row[10]
        if first is not None and (row[0], start) in before:
            percent = 100.0 * (cpu_s - before[(row[0], start)]) / max(now - started, 0.01)
        else:
            percent = 100.0 * cpu_s / max(now - start, 0.01)
        row.insert(7, round(max(percent, 0.0), 1))
    container = owners(rows)
    return {"v": 1, "src": "psutil" if psutil else "proc", "t": round(now, 3), "bt": btime,
            "cpu": "interval" if first is not None else "lifetime", "ci": container, "k": FIELDS, "r": rows}


def main(argv):
    use_psutil, interval, raw = True, 0.0, False
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--no-psutil":
            use_psutil = False
        elif arg == "--raw":
            raw = True
        elif arg == "--interval" and args:
            interval = min(max(float(args.pop(0)), 0.0), 10.0)
        else:
            sys.stderr.write("usage: collector.py [--no-psutil] [--interval SECONDS] [--raw]\n")
            return 2
    document = json.dumps(collect(use_psutil, interval, leave_out_self=True), separators=(",", ":"))
    if raw:
        sys.stdout.write(document + "\n")
    else:
        sys.stdout.write("OPSPORTAL-PAYLOAD\n")
        sys.stdout.write(base64.encodebytes(gzip.compress(document.encode(), 6)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
