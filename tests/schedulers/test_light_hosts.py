"""The real SSH backend (schedulers.host) against light hosts (fleet/light.py): real handshakes, a host key
per host pinned by the backend, the served commands and exit codes, cancel, and refused commands."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet import ssh as fleet_ssh
from schedulers.host import (
    BackendError,
    CancelToken,
    HostKeyMismatch,
    SSHPool,
    end_remote_session,
    gather_facts,
    run_capture,
)
from tests.schedulers.conftest import ssh_target

pytestmark = pytest.mark.light


@pytest.fixture(scope="module")
def light_key(light_fleet):
    return Path(light_fleet.key_path).read_text()


@pytest.fixture(scope="module")
def light_targets(light_fleet, light_key):
    return [ssh_target(host, light_key) for host in light_fleet.hosts]


def test_every_host_has_its_own_port_key_and_name(light_fleet, light_targets):
    hosts = light_fleet.hosts
    for field in ("port", "host_key", "name"):
        assert len({getattr(h, field) for h in hosts}) == len(hosts), field
    assert all(h.address == "127.0.0.1" and h.host_key.startswith("ssh-ed25519 ") for h in hosts)
    # A handshake with each of a sample, pinned to its own key, answers with its own hostname.
    sample = light_targets[:: max(1, len(light_targets) // 20)]
    with SSHPool(10) as pool, ThreadPoolExecutor(10) as executor:
        outputs = list(executor.map(lambda t: run_capture(pool, t, "uname -a", timeout=30), sample))
    for target, (result, out, err) in zip(sample, outputs, strict=True):
        assert result.ok and err == ""
        assert out.startswith(f"Linux {target.name} ") and out.endswith(" x86_64 GNU/Linux")


def test_a_key_pinned_for_another_host_is_refused_before_anything_runs(light_targets):
    one, other = light_targets[0], light_targets[1]
    with SSHPool(2) as pool:
        with pytest.raises(HostKeyMismatch) as caught:
            run_capture(pool, ssh_target_like(one, pinned_host_key=other.pinned_host_key), "true")
    assert caught.value.target_name == one.name


def test_an_unpinned_host_is_trusted_on_first_use_and_reports_its_key(light_targets):
    target = light_targets[2]
    seen = []
    with SSHPool(2, on_host_key=lambda t, line, fp: seen.append(line)) as pool:
        result, out, _ = run_capture(pool, ssh_target_like(target, pinned_host_key=""), "hostname")
    assert result.ok and out == target.name
    assert seen == [target.pinned_host_key]


def test_another_client_key_is_refused(light_targets, tmp_path):
    fleet_ssh.generate_keypair(tmp_path / "stranger")
    stranger = ssh_target_like(light_targets[0], private_key=(tmp_path / "stranger").read_text())
    with SSHPool(1) as pool, pytest.raises(BackendError, match="authentication failed"):
        run_capture(pool, stranger, "true")


def test_commands_and_exit_codes(light_targets):
    target = light_targets[3]
    expected = {
        "true": (0, "", ""),
        "false": (1, "", ""),
        "exit 7": (7, "", ""),
        "seq 3": (0, "1\n2\n3", ""),
        "seq 2 4": (0, "2\n3\n4", ""),
        "echo hello 'light world'": (0, "hello light world", ""),
        "uname -n": (0, target.name, ""),
        "sleep 0.1 && echo slept": (0, "slept", ""),
        "false || echo fallback": (0, "fallback", ""),
        "false; echo after": (0, "after", ""),
        "exec env -- A=1 uname -s": (0, "Linux", ""),
    }
    with SSHPool(2) as pool:
        for command, (code, stdout, stderr) in expected.items():
            result, out, err = run_capture(pool, target, command, env={"OPSPORTAL_JOB": "1"}, timeout=30)
            assert (result.exit_code, out, err) == (code, stdout, stderr), command
            assert result.data["session"] > 1  # the wrapper's session line was served and stripped


@pytest.mark.parametrize("command", ["rm -rf /", "cat /etc/shadow", "echo $(id)x | sh", "sleep 99999",
                                     "uname -a > /tmp/x", "curl http://127.0.0.1/",
                                     "echo $HOME", "echo hi >/tmp/x", "echo `id`", "echo hi 2>&1"])
def test_anything_else_is_refused_with_exit_127(light_targets, command):
    with SSHPool(1) as pool:
        result, out, err = run_capture(pool, light_targets[4], command, timeout=30)
    assert result.exit_code == 127 and out == ""
    assert err.startswith("light host: command not served")


def test_cancel_ends_the_session_and_a_foreign_tag_is_left_alone(light_targets):
    target = light_targets[5]
    with SSHPool(4) as pool:
        token = CancelToken()
        threading.Timer(0.5, token.cancel).start()
        started = time.monotonic()
        result, _, _ = run_capture(pool, target, "sleep 30", cancel=token, env={"OPSPORTAL_JOB": "5"})
        assert result.canceled and time.monotonic() - started < 5

        sessions, outcome = [], {}
        runner = threading.Thread(target=lambda: outcome.update(result=run_capture(
            pool, target, "sleep 20", env={"OPSPORTAL_JOB": "9"}, on_session=sessions.append)[0]))
        runner.start()
        deadline = time.monotonic() + 10
        while not sessions and time.monotonic() < deadline:
            time.sleep(0.05)
        gone, evidence = end_remote_session(pool, target, sessions[0], tag="OPSPORTAL_JOB=8")
        assert not gone and "left alone" in evidence
        assert end_remote_session(pool, target, sessions[0], tag="OPSPORTAL_JOB=9") == (True, "")
        runner.join(10)
        assert outcome["result"].exit_code == 143


def test_facts_probe_answers_json(light_targets):
    with SSHPool(1) as pool:
        facts = gather_facts(pool, light_targets[6])
    assert facts["hostname"] == light_targets[6].name and facts["os"]["id"] == "debian"


def test_many_hosts_at_once(light_targets):
    """Every host, 50 at a time, through one pool: all answer with their own name."""
    with SSHPool(50) as pool, ThreadPoolExecutor(50) as executor:
        outputs = list(executor.map(lambda t: run_capture(pool, t, "hostname", timeout=60), light_targets))
    assert [out for _, out, _ in outputs] == [t.name for t in light_targets]
    assert all(result.ok for result, _, _ in outputs)


def ssh_target_like(target, **overrides):
    fields = {name: getattr(target, name) for name in ("name", "address", "port", "username", "private_key",
                                                       "pinned_host_key", "connect_timeout")}
    fields.update(overrides)
    return type(target)(**fields)
