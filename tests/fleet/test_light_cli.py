"""`python -m fleet light up | status | down`: a background server, an inventory, and OpenSSH's own client
logging in with strict host key checking (a second, independent SSH implementation)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet import FleetError
from fleet.light import LightFleet, find_base_port, light_dir
from tests.helpers import missing

pytestmark = pytest.mark.light

ROOT = Path(__file__).resolve().parents[2]


def require_asyncssh():
    try:
        import asyncssh  # noqa: F401
    except ImportError:
        missing("asyncssh is not installed (pip install -r requirements-dev.txt)")


def fleet_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "fleet", "light", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_up_status_ssh_and_down(tmp_path):
    require_asyncssh()
    run_id = f"light-cli-test-{os.getpid()}"
    up = fleet_cli("up", "3", "--run-id", run_id, "--no-current", "--json")
    assert up.returncode == 0, up.stderr
    inventory = json.loads(up.stdout)
    try:
        assert inventory["run_id"] == run_id and inventory["kind"] == "light"
        assert [h["name"] for h in inventory["hosts"]] == ["light-0001", "light-0002", "light-0003"]
        ports = [h["port"] for h in inventory["hosts"]]
        assert ports == list(range(ports[0], ports[0] + 3)) and 20000 <= ports[0] < 32768

        status = json.loads(fleet_cli("status", "--json").stdout)
        assert status["runs"][run_id]["alive"] is True and status["runs"][run_id]["hosts"] == 3

        if shutil.which("ssh") is None:
            missing("no OpenSSH client (ssh) here")
        host = inventory["hosts"][1]
        login = subprocess.run(
            ["ssh", "-i", inventory["private_key"], "-o", f"UserKnownHostsFile={inventory['known_hosts']}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
             "-o", "IdentitiesOnly=yes", "-p", str(host["port"]), "root@127.0.0.1", "uname -n; seq 2; exit 4"],
            capture_output=True, text=True, timeout=30)
        assert (login.returncode, login.stdout) == (4, "light-0002\n1\n2\n"), login.stderr
        # Host 3's key pinned for host 2's port: OpenSSH refuses before logging in.
        wrong = tmp_path / "known_hosts"
        wrong.write_text(f"[127.0.0.1]:{host['port']} {inventory['hosts'][2]['host_key']}\n")
        refused = subprocess.run(
            ["ssh", "-i", inventory["private_key"], "-o", f"UserKnownHostsFile={wrong}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
             "-p", str(host["port"]), "root@127.0.0.1", "true"], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    finally:
        down = fleet_cli("down", "--run-id", run_id)
    assert down.returncode == 0, down.stderr
    assert not (light_dir() / run_id).exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{inventory['pid']}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stat = Path(f"/proc/{inventory['pid']}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"  # gone (or a zombie of init)


def test_hosts_keep_their_keys_across_runs_and_taken_ports_are_skipped():
    require_asyncssh()
    first = LightFleet.up(2)
    try:
        second = LightFleet.up(2)  # the first run's ports are taken: the next free window
        try:
            assert second.base_port != first.base_port
            assert [h.host_key for h in second.hosts] == [h.host_key for h in first.hosts]
        finally:
            second.down()
    finally:
        first.down()


def test_a_taken_port_fails_up_with_the_reason_and_leaves_nothing_behind():
    require_asyncssh()
    base = find_base_port(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 1))
        holder.listen()
        with pytest.raises(FleetError, match="cannot listen"):
            LightFleet.up(2, run_id=f"light-taken-{os.getpid()}", base_port=base)
    assert not (light_dir() / f"light-taken-{os.getpid()}").exists()
