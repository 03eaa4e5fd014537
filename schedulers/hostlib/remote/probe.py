"""Runs ON a managed host (sent as `python3 -c`): facts, metrics or compliance checks as one JSON line.

Standard library only, Python 3.6 or later; reads /proc and /etc rather than parsing tool
output where it can. Usage: probe.py facts | metrics | compliance PORT...

Disks (facts and metrics alike) are real filesystems, as `df` would show them, without:
- pseudo filesystems (proc, sysfs, cgroup, devpts, mqueue, debugfs, nsfs, …) and squashfs
  images (snaps: read-only and always full);
- tmpfs/devtmpfs/ramfs under /dev, /run, /sys, /proc, /var/run, /var/lock (runtime state);
  a tmpfs elsewhere (/tmp, a data mount) is kept, since filling it up breaks things;
- overlay mounts other than "/" (a container's root is overlay and is kept);
- mount points that are not directories (container runtimes bind-mount /etc/hosts etc.).
"""
# This file runs on managed hosts, which may have Python as old as 3.6: no f-strings with `=`,
# no capture_output, no newer syntax; %-formatting is kept deliberately.
# ruff: noqa: UP031, UP022
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

PSEUDO_FS = {
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "autofs", "configfs", "fusectl", "hugetlbfs", "binfmt_misc", "nsfs", "rpc_pipefs", "nfsd",
    "efivarfs", "selinuxfs", "squashfs", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal",
}
MEMORY_FS = {"tmpfs", "devtmpfs", "ramfs"}
RUNTIME_DIRS = ("/dev", "/run", "/sys", "/proc", "/var/run", "/var/lock")


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _is_disk(mount, fs):
    if fs in PSEUDO_FS:
        return False
    if fs in MEMORY_FS and any(mount == d or mount.startswith(d + "/") for d in RUNTIME_DIRS):
        return False
    if fs == "overlay" and mount != "/":
        return False
    return os.path.isdir(mount)


def disks():
    found = {}
    with open("/proc/self/mounts") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 3:
                continue
            device, mount, fs = _unescape(fields[0]), _unescape(fields[1]), fields[2]
            if not _is_disk(mount, fs):
                continue
            try:
                st = os.statvfs(mount)
            except OSError:
                continue
            if st.f_blocks == 0:
                continue
            size = st.f_blocks * st.f_frsize
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            available = st.f_bavail * st.f_frsize
            percent = round(100.0 * used / (used + available), 1) if used + available else 0.0
            # A later mount on the same point hides the earlier one: keep the visible one.
            found[mount] = {"mount": mount, "fs": fs, "device": device, "size": size, "used": used,
                            "available": available, "percent": percent}
    return sorted(found.values(), key=lambda d: d["mount"])


def meminfo():
    values = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                values[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return total, available


def os_release():
    info = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as fh:
                for line in fh:
                    name, sep, value = line.strip().partition("=")
                    if sep:
                        info[name] = value.strip().strip('"').strip("'")
            break
        except OSError:
            continue
    return info


def _hex_address(text):
    if len(text) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(text)[::-1])
    raw = bytes.fromhex(text)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_tcp():
    """Listening TCP sockets of this network namespace, from /proc/net/tcp and tcp6."""
    found = set()
    for path, family in (("/proc/net/tcp", "ipv4"), ("/proc/net/tcp6", "ipv6")):
        try:
            with open(path) as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        address, _, port = fields[1].partition(":")
                        found.add((family, _hex_address(address), int(port, 16)))
        except OSError:
            continue
    return [{"family": f, "address": a, "port": p} for f, a, p in sorted(found, key=lambda x: (x[2], x[0], x[1]))]


def _loopback(address):
    return address.startswith("127.") or address == "::1" or address.startswith("::ffff:127.")


def addresses():
    """Interface addresses from `ip -j addr` (iproute2), else IPv6 from /proc/net/if_inet6 only."""
    interfaces = []
    ip = shutil.which("ip") or ("/sbin/ip" if os.path.exists("/sbin/ip") else None)
    if ip:
        try:
            out = subprocess.run([ip, "-j", "addr"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 timeout=10, check=True).stdout
            for link in json.loads(out.decode() or "[]"):
                for info in link.get("addr_info", []):
                    if info.get("family") in ("inet", "inet6"):
                        interfaces.append({"interface": link.get("ifname"),
                                           "family": "ipv4" if info["family"] == "inet" else "ipv6",
                                           "address": info.get("local"), "prefix": info.get("prefixlen"),
                                           "scope": info.get("scope")})
            return interfaces, "ip -j addr"
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    try:
        with open("/proc/net/if_inet6") as fh:
            for line in fh:
                fields = line.split()
                raw = bytes.fromhex(fields[0])
                interfaces.append({"interface": fields[5], "family": "ipv6",
                                   "address": socket.inet_ntop(socket.AF_INET6, raw),
                                   "prefix": int(fields[2], 16), "scope": None})
    except OSError:
        pass
    return interfaces, "/proc/net/if_inet6 (no iproute2: IPv4 addresses unknown)"


SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The host tools the portal drives: (name, version argv, pattern of the version in its output).
TOOLS = (
    ("puppet", ["puppet", "--version"], r"^(\d+\.\d+[0-9A-Za-z.+~-]*)"),
    ("facter", ["facter", "--version"], r"^(\d+\.\d+[0-9A-Za-z.+~-]*)"),
    ("ansible", ["ansible", "--version"], r"^ansible(?: \[core)? ?(\d+\.\d+[0-9A-Za-z.+~-]*)"),
)
PUPPET_CONFS = ("/etc/puppet/puppet.conf", "/etc/puppetlabs/puppet/puppet.conf")


def puppet_agent_server():
    """The server a Puppet agent is configured to ask ([main] or [agent] `server`/`server_list`), or ""."""
    for path in PUPPET_CONFS:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        section = "main"
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif "=" in line and section in ("main", "agent"):
                key, value = [part.strip() for part in line.split("=", 1)]
                if key in ("server", "server_list") and value:
                    return value.split(",")[0].strip()
    return ""


def tools():
    """Which of the tools the portal drives are on the host, with their version: {name: {version, path}}."""
    found = {"python3": {"version": "%d.%d.%d" % sys.version_info[:3], "path": sys.executable}}
    for name, argv, pattern in TOOLS:
        path = shutil.which(argv[0], path=SAFE_PATH)
        if not path:
            continue
        version = ""
        try:
            code, out, err = _run(argv, timeout=30)
            match = re.search(pattern, (out or err).strip(), re.M)
            version = match.group(1) if match else ""
        except (OSError, subprocess.SubprocessError):
            pass
        found[name] = {"version": version, "path": path}
    if "puppet" in found:
        found["puppet"]["agent_server"] = puppet_agent_server()
    return found


def facts():
    uname = os.uname()
    release = os_release()
    total, available = meminfo()
    with open("/proc/uptime") as fh:
        uptime = float(fh.read().split()[0])
    interfaces, source = addresses()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    reboot_pkgs = []
    try:
        with open("/var/run/reboot-required.pkgs") as fh:
            reboot_pkgs = sorted({line.strip() for line in fh if line.strip()})
    except OSError:
        pass
    return {
        "os": {"id": release.get("ID", ""), "name": release.get("NAME", uname.sysname),
               "version": release.get("VERSION_ID", ""), "codename": release.get("VERSION_CODENAME", ""),
               "pretty_name": release.get("PRETTY_NAME", "")},
        "kernel": uname.release,
        "architecture": uname.machine,
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "memory": {"total": total, "available": available},
        "disks": disks(),
        "uptime_seconds": round(uptime, 1),
        "interfaces": interfaces,
        "addresses_source": source,
        "ipv4": sorted({i["address"] for i in interfaces if i["family"] == "ipv4" and not _loopback(i["address"])}),
        "ipv6": sorted({i["address"] for i in interfaces if i["family"] == "ipv6" and not _loopback(i["address"])}),
        "listening_tcp": listening_tcp(),
        "pending_reboot": os.path.exists("/var/run/reboot-required"),
        "pending_reboot_packages": reboot_pkgs,
        "python_version": "%d.%d.%d" % sys.version_info[:3],
        "tools": tools(),
        "collected_at": time.time(),
    }


def _cpu_times():
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in user.
    busy_fields = fields[:8]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(busy_fields), idle


def metrics(interval=0.5):
    total1, idle1 = _cpu_times()
    time.sleep(interval)
    total2, idle2 = _cpu_times()
    elapsed = total2 - total1
    cpu = round(100.0 * (1 - (idle2 - idle1) / elapsed), 1) if elapsed > 0 else 0.0
    total, available = meminfo()
    load1, load5, load15 = os.getloadavg()
    return {
        "load1": load1, "load5": load5, "load15": load15,
        "cpu_percent": max(0.0, min(100.0, cpu)),
        "cpu_count": os.cpu_count(),
        "mem_percent": round(100.0 * (1 - available / total), 1) if total else None,
        "memory": {"total": total, "available": available},
        "disks": {d["mount"]: d["percent"] for d in disks()},
        "collected_at": time.time(),
    }


def _run(argv, timeout=60):
    env = dict(os.environ, LC_ALL="C", PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=env)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def _check(name, passed, evidence):
    return {"check": name, "passed": passed, "evidence": evidence}


def check_sshd():
    try:
        code, out, err = _run(["sshd", "-T"])
    except (OSError, subprocess.SubprocessError) as exc:
        unknown = "sshd -T could not run: %s" % exc
        return [_check("sshd_permit_root_login", None, unknown), _check("sshd_password_authentication", None, unknown)]
    if code != 0:
        unknown = "sshd -T failed (exit %d): %s" % (code, err.strip()[:300])
        return [_check("sshd_permit_root_login", None, unknown), _check("sshd_password_authentication", None, unknown)]
    config = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        config.setdefault(key.lower(), value.strip())
    root = config.get("permitrootlogin", "")
    password = config.get("passwordauthentication", "")
    note = " (effective configuration from sshd -T; a running sshd may predate a config change)"
    safe_root = ("no", "prohibit-password", "without-password", "forced-commands-only")
    return [
        _check("sshd_permit_root_login", root in safe_root,
               "PermitRootLogin %s%s" % (root or "(not reported)", note)),
        _check("sshd_password_authentication", password == "no",
               "PasswordAuthentication %s%s" % (password or "(not reported)", note)),
    ]


def check_world_writable(root="/etc", limit=20):
    """Regular files under root writable by anyone, not crossing filesystems (find -xdev -type f -perm -0002)."""
    found = []
    try:
        device = os.lstat(root).st_dev
    except OSError as exc:
        return _check("etc_world_writable_files", None, "cannot read %s: %s" % (root, exc))
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if _same_device(os.path.join(directory, d), device)]
        for name in files:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o100000 and st.st_mode & 0o002:
                found.append(path)
    found.sort()
    if not found:
        return _check("etc_world_writable_files", True, "no world-writable regular files under %s" % root)
    shown = ", ".join(found[:limit]) + (" and %d more" % (len(found) - limit) if len(found) > limit else "")
    return _check("etc_world_writable_files", False, "%d world-writable: %s" % (len(found), shown))


def _same_device(path, device):
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_dev == device and (st.st_mode & 0o170000) == 0o040000


def check_security_updates():
    name = "security_updates"
    if not shutil.which("apt-get", path="/usr/bin:/bin"):
        return _check(name, None, "unknown: no apt-get on this host (only apt is supported)")
    lists_dir = "/var/lib/apt/lists"
    try:
        lists = [f for f in os.listdir(lists_dir) if f.endswith("_Packages") or "_Packages." in f]
    except OSError:
        lists = []
    if not lists:
        return _check(name, None, "unknown: apt has no package lists (%s is empty: apt-get update never ran "
                                  "or the host is offline), so pending security updates cannot be told" % lists_dir)
    newest = max(os.path.getmtime(os.path.join(lists_dir, f)) for f in lists)
    age = "package lists %.1f days old" % ((time.time() - newest) / 86400)
    try:
        code, out, err = _run(["apt-get", "-s", "-o", "Debug::NoLocking=true", "upgrade"], timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return _check(name, None, "unknown: apt-get -s upgrade could not run: %s" % exc)
    if code != 0:
        return _check(name, None, "unknown: apt-get -s upgrade failed (exit %d): %s" % (code, err.strip()[:300]))
    pending = sorted({line.split()[1] for line in out.splitlines()
                      if line.startswith("Inst ") and re.search(r"-security|Debian-Security", line)})
    if not pending:
        return _check(name, True, "no pending security updates (%s)" % age)
    return _check(name, False, "%d pending security updates: %s (%s)" % (len(pending), ", ".join(pending[:20]), age))


def check_ports(allowed):
    listeners = listening_tcp()
    exposed = [s for s in listeners if not _loopback(s["address"])]
    local = [s for s in listeners if _loopback(s["address"])]
    unexpected = sorted({s["port"] for s in exposed if s["port"] not in allowed})

    def show(sockets):
        return ", ".join(("[%s]:%d" if s["family"] == "ipv6" else "%s:%d") % (s["address"], s["port"]) for s in sockets)

    evidence = "listening: %s" % (show(exposed) or "nothing")
    if local:
        evidence += "; loopback only (not counted): %s" % show(local)
    evidence += "; allowed: %s" % (", ".join(str(p) for p in sorted(allowed)) or "none")
    if unexpected:
        evidence = "unexpected ports %s; %s" % (", ".join(str(p) for p in unexpected), evidence)
    return _check("unexpected_listening_ports", not unexpected, evidence)


def compliance(allowed):
    return check_sshd() + [check_world_writable(), check_security_updates(), check_ports(allowed)]


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode == "facts":
        result = facts()
    elif mode == "metrics":
        result = metrics()
    elif mode == "compliance":
        result = compliance({int(p) for p in argv[2:]})
    else:
        sys.stderr.write("usage: probe.py facts|metrics|compliance [PORT...]\n")
        return 2
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
