"""Runs ON a host (sent as `python3 -c`): list its processes, compact, as gzip + base64 JSON.

Needs only python3 (3.6 or later). On Linux the /proc reader is used (it is the faster one);
psutil when asked (--psutil) and it can be imported, or when there is no Linux /proc. Both give
the same fields. The portal imports this module to scan its own machine (`collect()`), so the two
paths are one code.

Usage: collector.py [--psutil | --no-psutil] [--interval SECONDS] [--raw]

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

Cost (see docs/PERFORMANCE.md): one pass over /proc, per process stat, status, cmdline and
cgroup (one read each), the fd directory's size for the open file count (Linux 6.2+; a listing
otherwise) and a readlink per fd only while the network namespace has TCP listeners, whose
inodes come first from sock_diag netlink (/proc/net/tcp{,6} when that is refused: reading those
walks the kernel's whole connection table). Imports are kept to C modules (no re, json, base64,
gzip, socket): on a host with few processes the interpreter's start is most of the scan.
"""
# This file runs on managed hosts, which may have Python as old as 3.6: %-formatting, no
# dataclasses, no walrus. Reads use os.open/os.read: a scan reads thousands of small files.
# ruff: noqa: UP031
import binascii
import os
import pwd
import struct
import sys
import time
import zlib

try:
    import _socket as sockets  # socket.py would import enum, selectors, …: milliseconds per scan
except ImportError:  # pragma: no cover - every CPython has it
    import socket as sockets

FIELDS = ["p", "pp", "u", "n", "c", "s", "ct", "cp", "r", "th", "fd", "st", "l", "o", "m", "ci"]
# pid, ppid, user, name (comm), cmdline (list), state letter, cpu seconds (user+system), cpu %,
# rss bytes, threads, open fds (None: not readable), start time, listening TCP [[address, port]],
# owner [kind, name] or None, main process of its owner (0/1), container id or "".

MAX_ARG = 1024
CONTAINER_PREFIXES = ("docker-", "docker/", "crio-", "cri-containerd-", "libpod-")  # then 64 hex digits
UNIT_SUFFIXES = (".service", ".scope")
HEX = "0123456789abcdef"
PSUTIL_STATES = {"running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "tracing-stop": "t",
                 "zombie": "Z", "dead": "X", "wake-kill": "K", "waking": "W", "idle": "I", "parked": "P"}
TCP_LISTEN = 10
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NETLINK_SOCK_DIAG = 4
FD_NAMES = []  # "fd/0", "fd/1", …: the names readlink is given, made once
B64_CHUNK = 36000  # raw bytes per base64 line: 48,000 characters, under hostlib's 64 KiB line limit


def _read(path, size=65536, at=None):
    """The whole of a file that the kernel hands out whole: one read when it holds less than size.

    /proc/<pid>/{stat,status,cgroup,cmdline,environ} and /proc/stat are such files; seq files
    with many records (/proc/net/tcp) come a page per read: _read_all. at: a directory's fd that
    a relative path starts from (the kernel then looks up one name, not /proc/<pid>/ again).
    """
    fd = os.open(path, os.O_RDONLY) if at is None else os.open(path, os.O_RDONLY, dir_fd=at)
    try:
        data = os.read(fd, size)
        if len(data) < size:
            return data
        chunks = [data]
        while data:
            data = os.read(fd, size)
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_all(path, size=65536):
    """The whole file, read to EOF."""
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
        return sockets.inet_ntop(sockets.AF_INET, raw[::-1])
    return sockets.inet_ntop(sockets.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_inodes():
    """{socket inode: [address, port]} of the listening TCP sockets of this network namespace."""
    try:
        return listening_netlink()
    except (OSError, ValueError, AttributeError):  # no sock_diag here (module, seccomp, old kernel)
        return listening_proc_net()


def listening_netlink():
    """listening_inodes() through sock_diag: the kernel walks only its listening sockets."""
    sock = sockets.socket(sockets.AF_NETLINK, sockets.SOCK_RAW, NETLINK_SOCK_DIAG)
    found = {}
    try:
        for seq, family in ((1, sockets.AF_INET), (2, sockets.AF_INET6)):
            # nlmsghdr, then inet_diag_req_v2: family, IPPROTO_TCP, no extensions, states; a zero sockid.
            request = struct.pack("=LHHLLBBBxL48x", 72, SOCK_DIAG_BY_FAMILY, 0x301, seq, 0, family, 6, 0,
                                  1 << TCP_LISTEN)
            sock.sendto(request, (0, 0))
            done = False
            while not done:
                data = sock.recv(65536)
                if not data:
                    raise ValueError("sock_diag ended early")
                at = 0
                while at + 16 <= len(data):
                    length, kind, _, answer_seq, _ = struct.unpack_from("=LHHLL", data, at)
                    if length < 16:
                        raise ValueError("bad netlink message")
                    if kind == NLMSG_DONE:
                        done = True
                        break
                    if kind == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, at + 16)[0]
                        raise OSError(code, "sock_diag refused")
                    if kind == SOCK_DIAG_BY_FAMILY and answer_seq == seq and length >= 16 + 72:
                        # inet_diag_msg: family, state, timer, retrans, sockid (sport, dport, src[16],
                        # dst[16], if, cookie[8]), expires, rqueue, wqueue, uid, inode.
                        msg = at + 16
                        size = 4 if data[msg] == sockets.AF_INET else 16
                        port = struct.unpack_from("!H", data, msg + 4)[0]
                        inode = struct.unpack_from("=L", data, msg + 68)[0]
                        found[str(inode)] = [sockets.inet_ntop(data[msg], data[msg + 8:msg + 8 + size]), port]
                    at += (length + 3) & ~3
    finally:
        sock.close()
    return found


def listening_proc_net():
    """listening_inodes() from /proc/net/tcp and tcp6."""
    found = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = _read_all(path).decode().split("\n")[1:]
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


def _fds(pid, listen, at=None):
    """(open fd count or None, listening [address, port] list) of one process.

    The fd directory's size is its number of open fds (Linux 6.2+). Without listeners that is
    all; with them, fds 0..n-1 are read first (a process's fds are usually dense) and the
    directory is listed only when some of them were not open. at: the fd of /proc/<pid>.
    """
    if at is None:
        base, where = "/proc/%d/fd" % pid, {}
    else:
        base, where = "fd", {"dir_fd": at}
    try:
        count = os.stat(base, **where).st_size
    except OSError:
        return None, []
    if count and not listen:
        return count, []
    ports = []
    seen = set()
    if count:
        if len(FD_NAMES) < count:
            FD_NAMES.extend("fd/%d" % fd for fd in range(len(FD_NAMES), count))
        readlink, names = os.readlink, FD_NAMES if at is not None else ["%s/%d" % (base, fd) for fd in range(count)]
        for fd in range(count):
            try:
                link = readlink(names[fd], **where)
            except OSError:
                continue
            seen.add(fd)
            if link[:8] == "socket:[":
                port = listen.get(link[8:-1])
                if port is not None and port not in ports:
                    ports.append(port)
        if len(seen) == count:
            return count, ports
    try:
        names = os.listdir("/proc/%d/fd" % pid)  # a sparse fd table, or a kernel that does not count in st_size
    except OSError:
        return None, []
    if listen:
        for name in names:
            if int(name) in seen:
                continue
            try:
                link = os.readlink("%s/%s" % (base, name), **where)
            except OSError:
                continue
            if link.startswith("socket:["):
                port = listen.get(link[8:-1])
                if port is not None and port not in ports:
                    ports.append(port)
    return len(names), ports


def _cgroup(pid):
    try:
        return _read("/proc/%d/cgroup" % pid)
    except OSError:
        return b""


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


def scan_proc(listen, users, hz, btime, kernel, cgroups):
    """Rows from /proc: [pid, ppid, user, name, cmdline, state, cpu s, rss, threads, fds, start, ports].

    Each process's cgroup file is read in the same pass, into cgroups ({pid: bytes}). Kernel
    threads (kthreadd and its children) have no user memory, command line, files or cgroup of
    their own: only their stat is read. The other files are opened relative to /proc/<pid>.
    """
    rows = []
    opendir, close, read = os.O_RDONLY | os.O_DIRECTORY, os.close, _read
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        at = None
        try:
            at = os.open("/proc/" + entry, opendir)
            stat = read("stat", 65536, at)
            head, _, rest = stat.rpartition(b")")
            f = rest.split()  # state ppid pgrp session tty tpgid flags 4×faults utime stime … threads … start
            ppid = int(f[1])
            if kernel is not None and (pid == kernel or ppid == kernel):
                uid, rss, args, nfd, ports = 0, 0, [], 0, []
            else:
                status = read("status", 65536, at)
                uid = _status_int(status, b"\nUid:")
                rss = _status_int(status, b"\nVmRSS:") * 1024  # stat's rss is the kernel's cheaper, rougher sum
                args = split_cmdline(read("cmdline", 65536, at))
                cgroups[pid] = read("cgroup", 65536, at)
                nfd, ports = _fds(pid, listen, at)
        except OSError:
            continue  # ended while being read
        finally:
            if at is not None:
                close(at)
        comm = head[head.find(b"(") + 1:].decode("utf-8", "replace")
        rows.append([pid, ppid, users(uid), full_name(comm, args) if len(comm) >= 15 else comm, args,
                     f[0].decode(), round((int(f[11]) + int(f[12])) / hz, 2), rss, int(f[17]), nfd,
                     round(btime + int(f[19]) / hz, 2), ports])
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


def scan_psutil(psutil, listen, users, kernel):
    """The same rows as scan_proc, the process facts read with psutil.

    Sockets come from listening_inodes() as in scan_proc: psutil.net_connections() decodes every
    connection of the machine, which costs more than the rest of the scan.
    """
    rows = []

    def get(method, default):
        try:
            return method()
        except (psutil.ZombieProcess, psutil.AccessDenied):  # a zombie has no command line, memory, …
            return default

    # Not process_iter(): it yields the Process objects cached at an earlier call, and one whose pid
    # now belongs to another process raises NoSuchProcess, so a long-lived scanner missed it.
    for pid in psutil.pids():
        try:
            proc = psutil.Process(pid)
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


def _container_id(cgroup):
    """The first 64-hex-digit id after a container runtime's prefix in a cgroup file, or None."""
    best_at, best = len(cgroup), None
    for prefix in CONTAINER_PREFIXES:
        at = cgroup.find(prefix)
        while 0 <= at < best_at:
            start = at + len(prefix)
            found = cgroup[start:start + 64]
            if len(found) == 64 and not found.strip(HEX):
                best_at, best = at, found
                break
            at = cgroup.find(prefix, at + 1)
    return best


def _container(cgroup, pid1_container):
    found = _container_id(cgroup)
    if found and found[:12] != pid1_container:
        return found[:12]
    return ""


def _unit(cgroup):
    for line in cgroup.split("\n"):
        hierarchy, _, path = line.partition(":")[2].partition(":")
        if hierarchy in ("", "name=systemd") and "/" in path:
            name = path.rpartition("/")[2]
            for suffix in UNIT_SUFFIXES:
                if name.endswith(suffix) and len(name) > len(suffix):
                    return name
    return None


def owners(rows, kernel, cgroups):
    """Append owner, main flag and container id to each row (see the module's docstring).

    cgroups: {pid: cgroup file} as scan_proc read them; the others are read here.
    """
    by_pid = {row[0]: row for row in rows}
    children = {}
    for row in rows:
        children.setdefault(row[1], []).append(row)
    pid1 = by_pid.get(1)
    pid1_cgroup = cgroups[1] if 1 in cgroups else _cgroup(1)
    found_id = _container_id(pid1_cgroup.decode("utf-8", "replace"))
    pid1_container = found_id[:12] if found_id else ""
    systemd = pid1 is not None and pid1[3] == "systemd"
    owner = {}
    main = set()
    for row in rows:
        if row[3] == "supervisord" or (row[3].startswith("python") and "supervisord" in " ".join(row[4][:2])):
            for child in children.get(row[0], []):
                env = _environ(child[0], (b"SUPERVISOR_PROCESS_NAME", b"SUPERVISOR_GROUP_NAME"))
                name = env.get("SUPERVISOR_PROCESS_NAME", "")
                group = env.get("SUPERVISOR_GROUP_NAME", name)
                owner[child[0]] = ["supervisord", "%s:%s" % (group, name) if group != name else name]
                main.add(child[0])
        elif row[4] and row[4][0].startswith("PM2"):
            command = " ".join(row[4])
            if command.startswith("PM2 ") and "God Daemon" in command:
                for child in children.get(row[0], []):
                    env = _environ(child[0], (b"name", b"pm_id"))
                    owner[child[0]] = ["pm2", env.get("name", env.get("pm_id", ""))]
                    main.add(child[0])
    # Descendants of a program belong to it (a shell wrapper's children, workers).
    parsed = {}
    stack = list(owner)
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            if child[0] not in owner:
                owner[child[0]] = owner[pid]
                stack.append(child[0])
    for row in rows:
        pid = row[0]
        if kernel is not None and (pid == kernel or row[1] == kernel):
            row.extend([None, 0, ""])
            continue
        cgroup = cgroups[pid] if pid in cgroups else _cgroup(pid)
        known = parsed.get(cgroup)
        if known is None:  # most processes share their cgroup with others: parse each one once
            text = cgroup.decode("utf-8", "replace")
            known = parsed[cgroup] = (_container(text, pid1_container), _unit(text) if systemd else None)
        container, unit = known
        found = owner.get(pid)
        if found is None and container:  # before systemd: docker's containers are scope units too
            found = ["container", container]
        if found is None and unit and pid != 1:
            found = ["systemd", unit]
        is_main = pid in main or (found is not None and found[0] == "systemd" and row[1] == 1)
        row.extend([found, 1 if is_main else 0, container])
    return pid1_container


def _import_psutil(use_psutil):
    """psutil when asked for (True) and importable, or (None: the reader's choice) without a Linux /proc."""
    if use_psutil is False or (use_psutil is None and os.path.exists("/proc/self/stat")):
        return None
    try:
        import psutil  # noqa: PLC0415 — optional on the scanned host; /proc is the fallback
    except ImportError:
        return None
    return psutil


def collect(use_psutil=None, interval=0.0, leave_out_self=False):
    """Scan this machine; return the document described in the module's docstring.

    use_psutil: None reads /proc on Linux and uses psutil elsewhere; True prefers psutil; False
    reads /proc.
    """
    psutil = _import_psutil(use_psutil)
    hz = os.sysconf("SC_CLK_TCK")
    btime = boot_time()
    users = _Users()
    kernel = kthreadd()
    cgroups = {}

    def scan():
        cgroups.clear()
        listen = listening_inodes()
        if psutil:
            return scan_psutil(psutil, listen, users, kernel)
        return scan_proc(listen, users, hz, btime, kernel, cgroups)

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
    container = owners(rows, kernel, cgroups)
    return {"v": 1, "src": "psutil" if psutil else "proc", "t": round(now, 3), "bt": btime,
            "cpu": "interval" if first is not None else "lifetime", "ci": container, "k": FIELDS, "r": rows}


def to_json(document):
    """Compact JSON, the same text as json.dumps(document, separators=(",", ":")).

    The C encoder is called directly: importing json imports re, enum and more, which costs a
    host with few processes more than listing them.
    """
    try:
        from _json import encode_basestring_ascii, make_encoder  # noqa: PLC0415
        encode = make_encoder(None, None, encode_basestring_ascii, None, ":", ",", False, False, True)
        return "".join(encode(document, 0))
    except (ImportError, TypeError):  # another Python's private signature: the public way
        import json  # noqa: PLC0415

        return json.dumps(document, separators=(",", ":"))


def payload(text):
    """gzip(text) as base64 lines: what decode_payload on the portal reads after the mark."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    packed = packer.compress(text.encode()) + packer.flush()
    return "".join(binascii.b2a_base64(packed[i:i + B64_CHUNK]).decode()
                   for i in range(0, len(packed), B64_CHUNK))


def main(argv):
    use_psutil, interval, raw = None, 0.0, False
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--no-psutil":
            use_psutil = False
        elif arg == "--psutil":
            use_psutil = True
        elif arg == "--raw":
            raw = True
        elif arg == "--interval" and args:
            interval = min(max(float(args.pop(0)), 0.0), 10.0)
        else:
            sys.stderr.write("usage: collector.py [--psutil | --no-psutil] [--interval SECONDS] [--raw]\n")
            return 2
    document = to_json(collect(use_psutil, interval, leave_out_self=True))
    if raw:
        sys.stdout.write(document + "\n")
    else:
        sys.stdout.write("OPSPORTAL-PAYLOAD\n" + payload(document))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
