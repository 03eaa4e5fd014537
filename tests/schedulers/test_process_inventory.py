"""Process inventory: the portal's own machine (/proc, or psutil when asked), fleet hosts through the
collector, and what changed between two scans."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from schedulers.process import inventory
from schedulers.process.inventory import Proc, Snapshot
from schedulers.process.remote import collector
from schedulers.process.shells import LocalShell, SSHShell

LISTENER = ("import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True); time.sleep(120)\n")


@pytest.fixture
def listener():
    """A child process of this test listening on a TCP port of 127.0.0.1: (Popen, port)."""
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, "opsportal-inventory-test"], stdout=subprocess.PIPE)
    port = int(proc.stdout.readline())
    yield proc, port
    proc.kill()
    proc.wait()


def check_listener(snapshot, proc, port):
    found = snapshot.by_pid()[proc.pid]
    assert found.ppid == os.getpid()
    assert found.cmdline == [sys.executable, "-c", LISTENER, "opsportal-inventory-test"]
    assert found.ports == [("127.0.0.1", port)]
    assert found.user == "root" and found.state in ("S", "R")
    assert found.rss > 1_000_000 and found.threads == 1 and found.fds >= 3
    assert abs(found.started_at - psutil.Process(proc.pid).create_time()) < 0.02


def test_local_scan_reads_proc_and_finds_this_tests_child_with_its_parent_command_and_port(listener):
    snapshot = inventory.scan_local()
    assert snapshot.source == "proc" and snapshot.cpu_basis == "lifetime"
    check_listener(snapshot, *listener)


def test_local_scan_with_psutil_asked_for_finds_the_same_child(listener):
    snapshot = inventory.scan_local(use_psutil=True)
    assert snapshot.source == "psutil"
    check_listener(snapshot, *listener)


def test_the_proc_collector_finds_the_same_child(listener):
    snapshot = inventory.scan(LocalShell(), use_psutil=False, python=sys.executable)
    assert snapshot.source == "proc" and snapshot.payload_bytes > 0
    check_listener(snapshot, *listener)


def titles():
    """{pid: raw /proc/<pid>/cmdline} of every process now."""
    found = {}
    for pid in psutil.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                found[pid] = fh.read()
        except OSError:
            pass
    return found


def differences(by_psutil, by_proc, before, volatile):
    """Pids found by one reader only, and fields that differ, among processes that lived through both scans."""
    alive = {p.pid for p in by_psutil.processes + by_proc.processes if psutil.pid_exists(p.pid)}
    old_psutil = {p.pid for p in by_psutil.processes if p.started_at < before} & alive
    old_proc = {p.pid for p in by_proc.processes if p.started_at < before} & alive
    found = [f"{pid} seen by one reader only" for pid in old_psutil ^ old_proc]
    a, b = by_psutil.by_pid(), by_proc.by_pid()
    for pid in old_psutil & old_proc:
        left, right = a[pid], b[pid]
        fields = ["ppid", "user", "started_at", "owner", "container", "ports"]
        if pid not in volatile:  # postgres, sshd and others rewrite their titles as they work
            fields.append("cmdline")
        if left.ppid != 2:  # kernel workers rename themselves as their work changes
            fields.append("name")
        found += [f"{pid} {name}: {getattr(left, name)!r} != {getattr(right, name)!r}" for name in fields
                  if getattr(left, name) != getattr(right, name)]
    return found, len(old_psutil & old_proc)


def test_proc_fallback_and_psutil_agree_on_every_long_lived_process(listener):
    # A process may change its title or listeners between the two scans: titles seen changing
    # are not compared, and the two readers must agree on one of three tries.
    before = time.time() - 1
    for _ in range(3):
        first = titles()
        by_psutil = inventory.scan_local(use_psutil=True)
        by_proc = inventory.scan(LocalShell(), python=sys.executable)
        last = titles()
        volatile = {pid for pid in first if pid in last and first[pid] != last[pid]}
        found, compared = differences(by_psutil, by_proc, before, volatile)
        if not found:
            break
    assert found == [] and compared > 20
    assert (by_psutil.source, by_proc.source) == ("psutil", "proc")
    assert by_psutil.by_pid()[listener[0].pid].ports == by_proc.by_pid()[listener[0].pid].ports


def test_interval_sampling_and_scan_to_scan_deltas_measure_a_busy_process():
    """The scans' CPU % agrees with the CPU time the kernel charged the process over the same window
    (the share the busy loop gets depends on the machine's load, so it is measured, not assumed)."""
    spin = "import time\nend = time.time() + 20\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    watch = psutil.Process(busy.pid)

    def charged():
        times = watch.cpu_times()
        return times.user + times.system, time.monotonic()

    try:
        time.sleep(0.5)
        cpu0, wall0 = charged()
        first = inventory.scan_local()
        sampled = inventory.scan_local(interval=1.0)
        cpu1, wall1 = charged()
        expected = 100 * (cpu1 - cpu0) / (wall1 - wall0)
        assert sampled.cpu_basis == "interval" and expected > 5
        assert abs(sampled.by_pid()[busy.pid].cpu_percent - expected) < max(15, expected / 3)
        time.sleep(1.0)
        second = inventory.scan_local(previous=first)
        cpu2, wall2 = charged()
        expected = 100 * (cpu2 - cpu0) / (wall2 - wall0)
        assert second.cpu_basis == "delta"
        assert abs(second.by_pid()[busy.pid].cpu_percent - expected) < max(15, expected / 3)
        assert second.by_pid()[os.getppid()].cpu_percent < second.by_pid()[busy.pid].cpu_percent
    finally:
        busy.kill()
        busy.wait()


# Pure helpers, on made-up snapshots -------------------------------------------------------------

def proc(pid, ppid=1, name="x", started=100.0, owner=None, main=False, cpu=0.0, rss=1000, **extra):
    fields = dict(pid=pid, ppid=ppid, user="root", name=name, cmdline=[name], state="S", cpu_time=1.0,
                  cpu_percent=cpu, rss=rss, threads=1, fds=3, started_at=started, ports=[], owner=owner, main=main)
    fields.update(extra)
    return Proc(**fields)


def snap(*procs, at=1000.0):
    return Snapshot(host="h", collected_at=at, boot_time=1.0, source="proc", cpu_basis="lifetime", container="",
                    processes=list(procs))


def test_diff_tells_new_gone_and_restarted():
    program = ("supervisord", "web")
    before = snap(proc(1, 0, "init"), proc(10, name="sshd"), proc(20, name="old"), proc(30, 17, "web", owner=program,
                                                                                         main=True),
                  proc(40, name="cron", started=100.0))
    after = snap(proc(1, 0, "init"), proc(10, name="sshd"), proc(31, 17, "web", 150.0, owner=program, main=True),
                 proc(40, name="cron", started=160.0), proc(50, name="fresh", started=170.0))
    change = inventory.diff(before, after)
    assert [p.pid for p in change.new] == [50]
    assert [p.pid for p in change.gone] == [20]
    assert sorted((old.pid, new.pid) for old, new in change.restarted) == [(30, 31), (40, 40)]
    assert not inventory.diff(after, after)


def test_a_reused_pid_with_another_program_is_gone_and_new_not_restarted():
    change = inventory.diff(snap(proc(5, name="a", started=1.0)), snap(proc(5, name="b", started=2.0)))
    assert (len(change.new), len(change.gone), change.restarted) == (1, 1, [])


def test_tree_top_and_select():
    snapshot = snap(proc(1, 0, "init", cpu=0.5), proc(2, 1, "sshd", ports=[("0.0.0.0", 22)], rss=5000),
                    proc(3, 2, "bash", cpu=90.0), proc(4, 3, "top", cpu=20.0, rss=9000), proc(9, 8, "orphan"))
    roots = inventory.tree(snapshot)
    assert [n.proc.pid for n in roots] == [1, 9]
    assert [n.proc.pid for n in roots[0].children[0].children] == [3]
    assert [p.pid for p in inventory.top(snapshot, by="cpu", n=2)] == [3, 4]
    assert [p.pid for p in inventory.top(snapshot, by="memory", n=1)] == [4]
    assert [p.pid for p in inventory.select(snapshot, port=22)] == [2]
    assert [p.pid for p in inventory.select(snapshot, text="BA")] == [3]
    with pytest.raises(ValueError):
        inventory.top(snapshot, by="disk")


def test_owners_are_read_from_cgroup_paths():
    v2 = "0::/system.slice/nginx.service\n"
    v1 = "12:pids:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/\n"
    docker = "0::/system.slice/docker-" + "a" * 64 + ".scope\n"
    assert (collector._unit(v2), collector._unit(v1), collector._unit("0::/\n")) == (
        "nginx.service", "cron.service", None)
    assert collector._container(docker, "") == "a" * 12
    assert collector._container("4:memory:/docker/" + "b" * 64 + "\n", "") == "b" * 12
    assert collector._container("4:memory:/docker/" + "b" * 64 + "\n", "b" * 12) == "", "the host's own"


def test_snapshots_survive_a_round_trip_through_plain_data():
    snapshot = snap(proc(2, ports=[("::", 80)], owner=("systemd", "x.service")))
    assert Snapshot.from_dict(snapshot.to_dict()) == snapshot


# Fleet hosts, through SSH ------------------------------------------------------------------------

@pytest.mark.fleet
def test_every_fleet_host_lists_sshd_supervisord_and_its_programs_with_their_owner(fleet, pool, targets):
    shells = [SSHShell(pool, target) for target in targets]
    deadline = time.monotonic() + 20
    while True:  # supervisord spawns its programs about a second after a fresh host accepts SSH
        found = inventory.scan_many(shells, workers=len(shells))
        spawned = [isinstance(s, Snapshot) and len(inventory.select(s, owner_kind="supervisord")) >= 2
                   for s in found.values()]
        if all(spawned) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(found) == {t.name for t in targets}
    for name, snapshot in found.items():
        assert isinstance(snapshot, Snapshot), f"{name}: {snapshot}"
        assert snapshot.source == "proc"  # the fleet image has no python3-psutil
        sshd = [p for p in snapshot.processes if p.name == "sshd" and ("0.0.0.0", 22) in p.ports]
        assert len(sshd) == 1 and sshd[0].user == "root" and sshd[0].owner is None
        supervisord = [p for p in snapshot.processes if p.name == "supervisord"]
        assert len(supervisord) == 1
        programs = {p.owner[1]: p for p in snapshot.processes if p.main and p.owner and p.owner[0] == "supervisord"}
        assert set(programs) >= {"sleeper", "ticker"}
        assert programs["sleeper"].cmdline == ["/bin/sleep", "infinity"]
        assert programs["sleeper"].ppid == supervisord[0].pid
        # The host is itself a container: its own processes are not said to be in one.
        assert len(snapshot.container) == 12 and sshd[0].container == ""
        assert fleet.host(name).container_id.startswith(snapshot.container)


@pytest.mark.fleet
def test_a_program_killed_from_outside_shows_as_restarted(fleet, pool, targets, unique):
    target = targets[1]
    shell = SSHShell(pool, target)
    fleet.exec(target.name, f"setsid python3 -c 'import time; time.sleep(300)' {unique} </dev/null >/dev/null 2>&1 &")
    before = inventory.scan(shell)
    sleeper = [p for p in before.processes if p.owner == ("supervisord", "sleeper")][0]
    fleet.exec(target.name, ["kill", "-KILL", str(sleeper.pid)]).check()
    fleet.exec(target.name, ["pkill", "-f", unique])
    deadline = time.monotonic() + 15
    while True:
        after = inventory.scan(shell, previous=before)
        respawned = [p for p in after.processes if p.owner == ("supervisord", "sleeper")]
        if respawned or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    change = inventory.diff(before, after)
    assert [(old.pid, new.pid) for old, new in change.restarted] == [(sleeper.pid, respawned[0].pid)]
    assert [p.cmdline[-1] for p in change.gone if unique in p.cmdline] == [unique]
    assert after.cpu_basis == "delta"


def test_listening_sockets_beyond_the_first_page_of_proc_net_tcp_are_found():
    """procfs hands /proc/net/tcp out a page (about 27 sockets) per read: every line must be read."""
    import socket

    sockets = []
    try:
        for _ in range(150):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            sockets.append(sock)
        found = {tuple(v) for v in collector.listening_inodes().values()}
        assert {("127.0.0.1", s.getsockname()[1]) for s in sockets} <= found
    finally:
        for sock in sockets:
            sock.close()


def test_sock_diag_and_proc_net_tcp_agree_on_the_listening_sockets():
    """Listeners come from sock_diag netlink; /proc/net/tcp{,6} is the fallback and must say the same."""
    import socket

    sockets = []
    try:
        for family, address in [(socket.AF_INET, "127.0.0.1")] * 40 + [(socket.AF_INET6, "::1")] * 3:
            sock = socket.socket(family)
            sock.bind((address, 0))
            sock.listen()
            sockets.append(sock)
        by_netlink, by_proc = collector.listening_netlink(), collector.listening_proc_net()
        assert by_netlink == by_proc
        assert {("::1", s.getsockname()[1]) for s in sockets[-3:]} <= {tuple(v) for v in by_netlink.values()}
    finally:
        for sock in sockets:
            sock.close()


SPARSE = ("import os, socket, sys, time\n"
          "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
          "port = s.getsockname()[1]; fd = s.detach(); os.dup2(fd, 300); os.close(fd)\n"
          "print(port, len(os.listdir('/proc/self/fd')) - 1, flush=True); time.sleep(120)\n")


def test_a_listener_on_a_high_fd_of_a_sparse_fd_table_is_found_and_its_fds_counted():
    """The fd scan tries fds 0..n-1 first and lists the directory when some were not open."""
    proc = subprocess.Popen([sys.executable, "-c", SPARSE], stdout=subprocess.PIPE)
    try:
        port, fds = (int(word) for word in proc.stdout.readline().split())  # less the listing's own fd
        found = inventory.scan_local().by_pid()[proc.pid]
        assert found.ports == [("127.0.0.1", port)] and found.fds == fds
        assert collector._fds(proc.pid, collector.listening_inodes()) == (fds, [["127.0.0.1", port]])
        assert collector._fds(proc.pid, {}) == (fds, [])
    finally:
        proc.kill()
        proc.wait()


def test_the_json_encoder_writes_what_json_dumps_writes():
    import json

    document = {"v": 1, "t": 1.5e9, "r": [[1, "é\"\\\n\x00", None, [["::", 22]], 0.1, -3, True, []]],
                "k": ["p"], "ci": ""}
    assert collector.to_json(document) == json.dumps(document, separators=(",", ":"))


def test_the_payload_is_what_decode_payload_reads():
    from schedulers.process.shells import decode_payload

    document = collector.collect()
    text = collector.to_json(document)
    assert decode_payload("noise\nOPSPORTAL-PAYLOAD\n" + collector.payload(text)) == document
    assert max(len(line) for line in collector.payload(text * 20).split("\n")) <= 48_000


def test_a_psutil_scan_finds_a_process_whose_pid_was_reused_since_an_earlier_scan(listener):
    """psutil.process_iter() yields the Process objects it cached at an earlier call; a cached one
    whose pid now belongs to another process fails with NoSuchProcess, so a long-lived worker's scan
    missed that process (seen in CI: the listener's pid had been another process's before)."""
    proc, port = listener
    stale = psutil.Process(proc.pid)
    stale._create_time = stale.create_time() - 3600  # what psutil had cached for the pid's previous owner
    stale._ident = (proc.pid, stale._create_time)
    psutil._pmap[proc.pid] = stale
    snapshot = inventory.scan_local(use_psutil=True)
    check_listener(snapshot, proc, port)
