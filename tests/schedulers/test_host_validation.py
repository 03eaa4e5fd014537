"""The host backend's checks and pure logic, without any host: validation, quoting, pool bounds."""

import gzip
import io
import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from schedulers.base import BackendError, CancelToken
from schedulers.hostlib import validate
from schedulers.hostlib.command import KILLER, WRAPPER, remote_line
from schedulers.hostlib.connect import HostKeyMismatch, SSHPool, SSHTarget, parse_public_key
from schedulers.hostlib.files import unified_diff
from schedulers.hostlib.probes import probe_source
from schedulers.hostlib.release import _release_of, content_digest, releases_to_prune
from schedulers.sshkeys import fingerprint, load_private_key, public_line
from tests.keys import new_private_key

HOSTILE = ["; rm -rf /", "$(touch /tmp/pwned)", "`touch /tmp/pwned`", "a\nb", "x' y \"z", "&& reboot", "| sh"]


def tarball(members):
    """members: [(name, kind, payload)] with kind file|dir|symlink|hardlink|fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[kind]
            info.linkname = payload or ""
            archive.addfile(info)
    return buf.getvalue()


# -- paths, identifiers, names ------------------------------------------------------------

@pytest.mark.parametrize("path, normal", [
    ("/etc/app.conf", "/etc/app.conf"),
    ("/srv//app/./x", "/srv/app/x"),
    ("/tmp/a; rm -rf ~", "/tmp/a; rm -rf ~"),  # odd but harmless: paths travel as data or quoted
    ("/tmp/$(touch x)", "/tmp/$(touch x)"),
])
def test_accepts_absolute_paths_and_normalises_them(path, normal):
    assert validate.remote_path(path) == normal


@pytest.mark.parametrize("path", ["", "etc/passwd", "./x", "/etc/../root/.ssh/authorized_keys", "/a/..", "..",
                                  "/tmp/x\x00y", "/tmp/x\ny", None, 42])
def test_refuses_relative_paths_traversal_nul_and_control_characters(path):
    with pytest.raises(ValueError):
        validate.remote_path(path)


def test_a_file_path_is_not_the_root_directory():
    with pytest.raises(ValueError):
        validate.file_path("/")


@pytest.mark.parametrize("value", ["v1", "2024.06.01-rc1", "build_42", "A.b-C"])
def test_accepts_release_ids(value):
    assert validate.release_id(value) == value


@pytest.mark.parametrize("value", [".", "..", ".hidden", "-rf", "a/b", "v1 v2", "", "x" * 129, *HOSTILE])
def test_refuses_release_ids_outside_the_safe_alphabet(value):
    with pytest.raises(ValueError):
        validate.release_id(value)


@pytest.mark.parametrize("value", ["root", "www-data", "_apt", "svc.app", "machine$", "1000"])
def test_accepts_posix_user_and_group_names(value):
    assert validate.posix_name(value) == value


@pytest.mark.parametrize("value", ["", "-root", "ro ot", "root:root", "a" * 40, "root\n", *HOSTILE])
def test_refuses_owner_names_that_are_not_posix_names(value):
    with pytest.raises(ValueError):
        validate.posix_name(value)


def test_environment_names_must_be_identifiers_but_values_are_free():
    assert validate.env_names({"A_1": "$(x); `y`"}) == {"A_1": "$(x); `y`"}
    for bad in ({"A-B": "x"}, {"1A": "x"}, {"A;B": "x"}, {"A": "x\x00"}, {"A": 1}):
        with pytest.raises(ValueError):
            validate.env_names(bad)


@pytest.mark.parametrize("mode", [-1, 0o10000, "644", 6.0, True])
def test_refuses_modes_that_are_not_permission_bits(mode):
    with pytest.raises(ValueError):
        validate.file_mode(mode)


# -- release archives ---------------------------------------------------------------------

def test_accepts_an_archive_with_files_dirs_and_inward_links():
    data = tarball([(".", "dir", None), ("./bin", "dir", None), ("./bin/app", "file", b"#!/bin/sh\n"),
                    ("./lib", "dir", None), ("./lib/x.so", "file", b"x"), ("./bin/x.so", "symlink", "../lib/x.so"),
                    ("./app", "hardlink", "bin/app"), ("./self", "symlink", ".")])
    assert "./bin/app" in validate.release_archive(data)


@pytest.mark.parametrize("members, reason", [
    ([("/etc/passwd", "file", b"x")], "absolute"),
    ([("../evil", "file", b"x")], "'..'"),
    ([("a/../../evil", "file", b"x")], "'..'"),
    ([("link", "symlink", "/etc")], "absolute"),
    ([("link", "symlink", "../../etc")], "outside"),
    ([("a", "dir", None), ("a/link", "symlink", "../..")], "outside"),
    # Each link looks inward on its own; followed together they leave the directory.
    ([("here", "symlink", "."), ("up", "symlink", "here/..")], "outside"),
    ([("d", "symlink", "."), ("d2", "symlink", "d/d/.."), ("x", "file", b"")], "outside"),
    ([("loop", "symlink", "loop/x")], "symlink levels"),
    ([("dev", "chr", None)], "devices"),
    ([("pipe", "fifo", None)], "devices"),
    ([("hard", "hardlink", "/etc/shadow")], "absolute"),
    ([("hard", "hardlink", "missing")], "hard link"),
    ([("a", "file", b"1"), ("a", "file", b"2")], "twice"),
])
def test_refuses_archives_that_could_write_outside_the_release(members, reason):
    with pytest.raises(ValueError, match=reason):
        validate.release_archive(tarball(members))


def test_refuses_a_file_written_through_a_symlink_that_points_outside():
    with pytest.raises(ValueError):
        validate.release_archive(tarball([("etc", "symlink", "../../../../etc"), ("etc/cron.d/x", "file", b"")]))


@pytest.mark.parametrize("data", [b"", b"not a tarball", b"\x1f\x8b\x08\x00garbage"])
def test_refuses_data_that_is_not_a_tar_gz(data):
    with pytest.raises(ValueError):
        validate.release_archive(data)


# -- quoting ------------------------------------------------------------------------------

@pytest.mark.parametrize("hostile", HOSTILE)
def test_every_argument_reaches_the_remote_shell_as_one_literal_word(hostile):
    line = remote_line(["sh", "-c", WRAPPER, "opsportal-run", "M", "30", hostile, hostile, f"X={hostile}"])
    assert shlex.split(line) == ["sh", "-c", WRAPPER, "opsportal-run", "M", "30", hostile, hostile, f"X={hostile}"]


def test_sudo_prefixes_only_for_other_users_than_root():
    assert remote_line(["id"], sudo=True, username="root") == "id"
    assert remote_line(["id"], sudo=True, username="deploy") == "sudo -n -- id"


def test_the_wrapper_runs_the_command_in_its_own_session_and_ends_leftovers(tmp_path):
    """The wrapper itself, run locally by sh: control line first, exit code kept, env and cwd applied."""
    marker = "OPSPORTAL-SID-test"
    script = 'echo "$GREETING from $(pwd)"; sleep 30 & echo "$!" >bg.pid; exit 7'
    proc = subprocess.run(["sh", "-c", WRAPPER, "opsportal-run", marker, "5", str(tmp_path), script,
                           "GREETING=hi $(there)"], capture_output=True, text=True, timeout=20)
    first, second = proc.stdout.splitlines()[:2]
    assert proc.returncode == 7
    assert first.startswith(marker + " ") and first.split()[1].isdigit()
    assert second == f"hi $(there) from {tmp_path}"
    leftover = int((tmp_path / "bg.pid").read_text())
    assert not _alive(leftover), "the background sleep outlived its command"


def test_the_wrapper_with_grace_zero_does_not_sweep_after_the_command(tmp_path):
    """sweep=False (grace 0) is for commands that start nothing: what one left anyway stays."""
    marker = "OPSPORTAL-SID-test"
    script = 'sleep 30 >/dev/null 2>&1 & echo "$!" >bg.pid; exit 3'
    proc = subprocess.run(["sh", "-c", WRAPPER, "opsportal-run", marker, "0", str(tmp_path), script],
                          capture_output=True, text=True, timeout=20)
    leftover = int((tmp_path / "bg.pid").read_text())
    try:
        assert proc.returncode == 3 and proc.stdout.startswith(marker + " ") and proc.stderr == ""
        assert _alive(leftover), "the session was swept although grace 0 asked not to"
    finally:
        os.kill(leftover, signal.SIGKILL)


def test_the_killer_ends_a_session_that_ignores_term(tmp_path):
    proc = subprocess.Popen(["setsid", "sh", "-c", "trap '' TERM; sleep 60 & sleep 60"], start_new_session=False)
    time.sleep(0.3)
    out = subprocess.run(["sh", "-c", KILLER, "opsportal-kill", str(proc.pid), "3"], capture_output=True,
                         text=True, timeout=30)
    proc.wait(timeout=5)
    assert out.stdout.startswith("gone"), out
    states = subprocess.run(["ps", "-o", "stat=", "-s", str(proc.pid)], capture_output=True, text=True).stdout
    assert all(state.startswith("Z") for state in states.split()), states  # zombies await their reaper


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


# -- host keys ----------------------------------------------------------------------------

def test_a_host_key_mismatch_names_both_fingerprints_and_survives_pickling():
    expected = load_private_key(new_private_key())
    offered = load_private_key(new_private_key())
    error = HostKeyMismatch(SSHTarget("web-01", "127.0.0.1"), expected, offered)
    assert str(error) == (f"host key for web-01 changed: expected {fingerprint(expected)}, got "
                          f"{fingerprint(offered)}; an admin must accept the new key")
    assert error.offered_key == public_line(offered)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, HostKeyMismatch) and isinstance(copy, BackendError)
    assert (str(copy), copy.offered_key, copy.expected_fingerprint) == (str(error), error.offered_key,
                                                                        error.expected_fingerprint)


def test_parses_a_pinned_key_line_with_or_without_comment():
    key = load_private_key(new_private_key())
    assert parse_public_key(public_line(key) + " root@web-01").asbytes() == key.asbytes()
    for bad in ("", "ssh-ed25519", "ssh-ed25519 !!!notbase64", "nonsense AAAA"):
        with pytest.raises(ValueError):
            parse_public_key(bad)


def test_a_target_keeps_its_secrets_out_of_repr():
    target = SSHTarget("web-01", "127.0.0.1", private_key="-----BEGIN SECRET", passphrase="hunter2")
    assert "SECRET" not in repr(target) and "hunter2" not in repr(target)


# -- the pool, with stand-in connections -------------------------------------------------

class FakeConnection:
    """Compares equal per target, as Fabric's Connection does (by host, user and port)."""

    def __init__(self, target, live):
        self.target = target
        self.is_connected = True
        self.trusted_on_first_use = False
        self._live = live
        live.append(self)

    def verify(self, timeout):
        return self.is_connected and not getattr(self, "silently_dead", False)

    def __eq__(self, other):
        return isinstance(other, FakeConnection) and self.target == other.target

    def __hash__(self):
        return hash(self.target)

    def close(self):
        self.is_connected = False
        self._live[:] = [conn for conn in self._live if conn is not self]


def test_the_pool_never_holds_more_connections_than_its_bound():
    live, peak, lock = [], [0], threading.Lock()

    def connect(target):
        time.sleep(0.01)
        with lock:
            conn = FakeConnection(target, live)
            peak[0] = max(peak[0], len(live))
        return conn

    pool = SSHPool(3, connect=connect)
    # Few targets, many threads: several connections to one target are leased at once.
    targets = [SSHTarget(f"h{i}", "127.0.0.1", port=2200 + i) for i in range(4)]

    def work(target):
        with pool.connection(target):
            time.sleep(0.02)

    threads = [threading.Thread(target=work, args=(t,)) for t in targets * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] <= 3
    assert pool.stats()["idle"] <= 3 and pool.stats()["leased"] == 0
    pool.close()
    assert live == []


def test_the_pool_reuses_an_idle_connection_and_replaces_a_dead_one():
    live = []
    pool = SSHPool(2, connect=lambda target: FakeConnection(target, live))
    target = SSHTarget("h", "127.0.0.1")
    with pool.connection(target) as first:
        pass
    with pool.connection(target) as again:
        assert again is first
    first.is_connected = False  # the host went away while idle
    with pool.connection(target) as fresh:
        assert fresh is not first
    assert pool.opened == 2


def test_the_pool_checks_a_long_idle_connection_before_reusing_it():
    live = []
    pool = SSHPool(2, verify_after=0.1, connect=lambda target: FakeConnection(target, live))
    target = SSHTarget("h", "127.0.0.1")
    with pool.connection(target) as first:
        pass
    with pool.connection(target) as again:  # idle briefly: reused unchecked
        assert again is first
    first.silently_dead = True  # looks connected, but the host rebooted meanwhile
    time.sleep(0.15)
    with pool.connection(target) as fresh:
        assert fresh is not first
    assert live == [fresh] and pool.opened == 2


def test_a_waiting_lease_gives_up_on_cancel_and_the_closed_pool_refuses():
    pool = SSHPool(1, connect=lambda target: FakeConnection(target, []))
    held = pool.acquire(SSHTarget("a", "127.0.0.1"))
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(BackendError, match="canceled while waiting"):
        pool.acquire(SSHTarget("b", "127.0.0.1"), cancel=token)
    pool.release(held)
    pool.close()
    with pytest.raises(BackendError, match="closed"):
        pool.acquire(SSHTarget("a", "127.0.0.1"))


# -- deploy bookkeeping and diffs ---------------------------------------------------------

def test_pruning_keeps_the_newest_and_the_current_release():
    order = ["v1", "v2", "v3", "v4", "v5"]
    assert releases_to_prune(order, "v5", 2) == ["v1", "v2", "v3"]
    assert releases_to_prune(order, "v1", 2) == ["v2", "v3"]  # current is never pruned
    assert releases_to_prune(order, None, 10) == []


def test_the_same_tar_content_compressed_twice_counts_as_the_same_release():
    raw = gzip.decompress(tarball([("VERSION", "file", b"v1\n")]))
    once, twice = gzip.compress(raw, mtime=1), gzip.compress(raw, mtime=2)
    assert once != twice and content_digest(once) == content_digest(twice)
    assert content_digest(tarball([("VERSION", "file", b"v2\n")])) != content_digest(once)


def test_reads_the_release_a_current_link_names():
    assert _release_of("releases/v2") == "v2"
    assert _release_of("/srv/app/releases/v2/") == "v2"
    assert _release_of("/elsewhere/v2") is None and _release_of("") is None


def test_a_diff_is_unified_and_binary_content_is_summarised():
    diff = unified_diff("/etc/a.conf", b"a=1\nb=2\n", b"a=1\nb=3\n")
    assert diff.splitlines()[:3] == ["--- /etc/a.conf", "+++ /etc/a.conf", "@@ -1,2 +1,2 @@"]
    assert "-b=2" in diff and "+b=3" in diff
    assert unified_diff("/etc/new", None, b"x\n").startswith("--- /dev/null")
    assert unified_diff("/bin/x", b"\xff\x00", b"\xfe") == "Binary files /bin/x differ\n"


# -- the remote probe, run here ----------------------------------------------------------

@pytest.mark.parametrize("mode", ["facts", "metrics"])
def test_the_probe_script_prints_one_json_document(mode):
    out = subprocess.run([sys.executable, "-c", probe_source(), mode], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    mounts = [disk["mount"] for disk in data["disks"]] if mode == "facts" else list(data["disks"])
    assert "/" in mounts


def test_the_probe_counts_real_disks_and_skips_runtime_and_pseudo_mounts():
    namespace = {}
    exec(compile(probe_source(), "probe.py", "exec"), namespace)  # noqa: S102 - our own script, to test a helper
    is_disk = namespace["_is_disk"]
    assert is_disk("/", "overlay") and is_disk("/", "ext4") and is_disk("/tmp", "tmpfs")
    assert not is_disk("/proc", "proc") and not is_disk("/run", "tmpfs") and not is_disk("/dev/shm", "tmpfs")
    assert not is_disk("/var/lib/docker/overlay2/x/merged", "overlay")
    assert not is_disk("/etc/hosts", "ext4")  # a bind-mounted file
