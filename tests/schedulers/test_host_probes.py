"""Facts, metrics and compliance checks from real hosts, each in one round trip."""

import pytest

from schedulers.host import collect_metrics, gather_facts, run_compliance_checks

pytestmark = pytest.mark.fleet


def test_facts_describe_the_host(fleet, pool, target):
    facts = gather_facts(pool, target)
    container = fleet.exec(target.name, "hostname; uname -r; uname -m; nproc --all; cat /proc/sys/kernel/osrelease")
    hostname, kernel, arch, cpus, _ = container.check().stdout.split()
    assert (facts["hostname"], facts["kernel"], facts["architecture"], facts["cpu_count"]) == (
        hostname, kernel, arch, int(cpus))
    assert facts["os"]["id"] == "debian" and facts["os"]["version"] == "12" and facts["os"]["codename"] == "bookworm"
    assert facts["memory"]["total"] > facts["memory"]["available"] > 0
    mounts = {disk["mount"]: disk for disk in facts["disks"]}
    assert mounts["/"]["fs"] == "overlay" and 0 <= mounts["/"]["percent"] <= 100
    assert mounts["/mnt/data"]["fs"] == "tmpfs" and mounts["/mnt/data"]["size"] == 64 * 1024 * 1024
    assert "/run" not in mounts and "/proc" not in mounts and "/etc/hosts" not in mounts
    assert facts["uptime_seconds"] > 0
    ip = fleet.exec(target.name, "hostname -I").check().stdout.split()
    assert set(facts["ipv4"]) == {a for a in ip if "." in a}
    assert {"family": "ipv4", "address": "0.0.0.0", "port": 22} in facts["listening_tcp"]
    assert facts["pending_reboot"] is False
    assert facts["python_version"].startswith("3.")
    python = fleet.exec(target.name, ["python3", "-c", "import platform; print(platform.python_version())"])
    assert facts["tools"] == {"python3": {"version": python.check().stdout.strip(), "path": "/usr/bin/python3"}}


def test_facts_name_puppet_and_facter_with_their_versions_and_whether_an_agent_is_configured(fleet_puppet):
    from pathlib import Path

    from schedulers.host import SSHPool
    from tests.schedulers.conftest import ssh_target

    host = fleet_puppet.hosts[-1]
    target = ssh_target(host, Path(fleet_puppet.key_path).read_text())
    versions = fleet_puppet.exec(host.name, "puppet --version; facter --version").check().stdout.split()
    with SSHPool(2) as pool:
        tools = gather_facts(pool, target)["tools"]
        assert tools["puppet"] == {"version": versions[0], "path": "/usr/bin/puppet", "agent_server": ""}
        assert tools["facter"] == {"version": versions[1], "path": "/usr/bin/facter"}
        assert "ansible" not in tools and tools["python3"]["version"].startswith("3.")
        fleet_puppet.exec(host.name, "cp /etc/puppet/puppet.conf /root/puppet.conf.orig; printf "
                                     "'[agent]\nserver = puppet.example.test # ours\n' >> /etc/puppet/puppet.conf")
        try:
            assert gather_facts(pool, target)["tools"]["puppet"]["agent_server"] == "puppet.example.test"
        finally:
            fleet_puppet.exec(host.name, "mv /root/puppet.conf.orig /etc/puppet/puppet.conf").check()


def test_a_pending_reboot_is_reported(fleet, pool, targets):
    target = targets[2]
    fleet.exec(target.name, "echo linux-image-amd64 > /var/run/reboot-required.pkgs; touch /var/run/reboot-required")
    try:
        facts = gather_facts(pool, target)
        assert facts["pending_reboot"] is True and facts["pending_reboot_packages"] == ["linux-image-amd64"]
    finally:
        fleet.exec(target.name, "rm -f /var/run/reboot-required /var/run/reboot-required.pkgs")


def test_metrics_sample_load_cpu_memory_and_disks(fleet, pool, targets):
    target = targets[3]
    fleet.exec(target.name, "head -c 16M /dev/zero > /mnt/data/fill").check()
    try:
        metrics = collect_metrics(pool, target)
    finally:
        fleet.exec(target.name, "rm -f /mnt/data/fill")
    assert {"load1", "load5", "load15", "cpu_percent", "mem_percent", "disks"} <= set(metrics)
    assert 0 <= metrics["cpu_percent"] <= 100 and 0 < metrics["mem_percent"] < 100
    assert metrics["disks"]["/mnt/data"] == 25.0  # 16 MiB of a 64 MiB tmpfs
    assert "/" in metrics["disks"]


def test_compliance_checks_pass_on_a_hardened_host_with_evidence(pool, target):
    checks = {c["check"]: c for c in run_compliance_checks(pool, target, allowed_ports=(22,))}
    assert set(checks) == {"sshd_permit_root_login", "sshd_password_authentication", "etc_world_writable_files",
                           "security_updates", "unexpected_listening_ports"}
    assert checks["sshd_permit_root_login"]["passed"] is True
    assert checks["sshd_permit_root_login"]["evidence"].startswith("PermitRootLogin without-password")
    assert checks["sshd_password_authentication"]["passed"] is True
    assert checks["etc_world_writable_files"]["passed"] is True
    assert checks["unexpected_listening_ports"]["passed"] is True
    # The fleet image ships without apt lists (offline build): unknown, not a fake pass.
    assert checks["security_updates"]["passed"] is None
    assert "apt has no package lists" in checks["security_updates"]["evidence"]


def test_compliance_checks_catch_a_weakened_host(fleet, pool, targets, unique):
    target = targets[4]
    setup = (f"touch /etc/{unique}.conf && chmod 0666 /etc/{unique}.conf && "
             "printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/00-weak.conf && "
             "(setsid python3 -m http.server 8081 >/dev/null 2>&1 &)")
    fleet.exec(target.name, setup).check()
    try:
        for _ in range(50):  # wait for the listener
            if fleet.exec(target.name, "ss -ltnH 'sport = :8081' | grep -q 8081").exit_code == 0:
                break
        checks = {c["check"]: c for c in run_compliance_checks(pool, target, allowed_ports=(22,))}
        allowed = {c["check"]: c for c in run_compliance_checks(pool, target, allowed_ports=(22, 8081))}
    finally:
        fleet.exec(target.name, f"rm -f /etc/{unique}.conf /etc/ssh/sshd_config.d/00-weak.conf; "
                                "pkill -f 'http.server 8081'")
    assert checks["etc_world_writable_files"]["passed"] is False
    assert f"/etc/{unique}.conf" in checks["etc_world_writable_files"]["evidence"]
    assert checks["sshd_password_authentication"]["passed"] is False
    assert checks["sshd_password_authentication"]["evidence"].startswith("PasswordAuthentication yes")
    assert checks["unexpected_listening_ports"]["passed"] is False
    assert checks["unexpected_listening_ports"]["evidence"].startswith("unexpected ports 8081")
    assert allowed["unexpected_listening_ports"]["passed"] is True
    assert "0.0.0.0:8081" in allowed["unexpected_listening_ports"]["evidence"]


@pytest.mark.parametrize("ports", [("22; touch /tmp/pwned",), (0,), (70000,), (True,)])
def test_allowed_ports_must_be_port_numbers(pool, target, ports):
    with pytest.raises(ValueError):
        run_compliance_checks(pool, target, allowed_ports=ports)
