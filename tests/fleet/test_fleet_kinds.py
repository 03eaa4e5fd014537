"""The other host kinds: a host booting systemd as PID 1, a host running PM2, and a host with Puppet."""

import json

import pytest

from fleet import Fleet, FleetError
from fleet.recipes import REPO_ROOT, recipe_files

pytestmark = pytest.mark.fleet


def test_an_unknown_kind_or_a_negative_count_is_refused_before_anything_starts():
    with pytest.raises(FleetError, match="kinds are host, systemd, pm2, puppet"):
        Fleet.up(1, kinds={"bsd": 1}, client=object())
    with pytest.raises(FleetError, match="counts at least 0"):
        Fleet.up(0, kinds={"pm2": -1}, client=object())


def test_the_kind_recipes_are_the_base_host_plus_their_own_directory():
    for kind in ("systemd", "pm2", "puppet"):
        files = recipe_files(kind)
        assert "fleet/images/host/rootfs/usr/local/sbin/fleet-identity" in files
        assert f"fleet/images/{kind}/customize.sh" in files
        assert "scripts/build-host-image.sh" in files
    assert "fleet/images/pm2/npm/package-lock.json" in recipe_files("pm2")


def test_pm2_is_pinned_with_every_dependency_and_no_download_address():
    lock = json.loads((REPO_ROOT / "fleet/images/pm2/npm/package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/pm2"]["version"]
    assert pinned == json.loads((REPO_ROOT / "fleet/images/pm2/npm/package.json").read_text())["dependencies"]["pm2"]
    assert all("integrity" in meta for path, meta in lock["packages"].items() if path)
    assert not any("resolved" in meta for meta in lock["packages"].values())


def test_the_inventory_records_each_hosts_kind(fleet_kinds):
    data = json.loads(fleet_kinds.inventory_path.read_text())
    assert {h["name"]: h["kind"] for h in data["hosts"]} == {h.name: h.kind for h in fleet_kinds.hosts}
    assert {h.kind for h in fleet_kinds.hosts} == {"systemd", "pm2"}
    again = Fleet.load(fleet_kinds.run_id, client=fleet_kinds.client)
    assert [(h.name, h.kind) for h in again.hosts] == [(h.name, h.kind) for h in fleet_kinds.hosts]
    assert set(data["images"]) >= {"host", "systemd", "pm2"}


# -- systemd -----------------------------------------------------------------------------


def test_the_systemd_host_boots_systemd_as_pid_1_and_sshd_as_a_unit(fleet_kinds, systemd_host):
    out = fleet_kinds.run(systemd_host.name, "cat /proc/1/comm; systemctl is-system-running --wait; "
                                             "systemctl is-active ssh.service supervisor.service; hostname",
                          timeout=90)
    pid1, state, ssh_state, supervisor_state, hostname = out.stdout.split()
    assert pid1 == "systemd"
    assert state in ("running", "degraded"), fleet_kinds.run(systemd_host.name, "systemctl --failed").stdout
    assert (ssh_state, supervisor_state) == ("active", "active")
    assert hostname == systemd_host.name


def test_the_systemd_host_is_not_privileged_and_sees_only_its_own_cgroups(fleet_kinds, systemd_host):
    attrs = fleet_kinds.container(systemd_host.name).attrs
    host_config = attrs["HostConfig"]
    assert host_config["Privileged"] is False
    assert host_config["CgroupnsMode"] == "private"
    assert host_config["CapAdd"] == ["SYS_ADMIN"]
    assert attrs["Config"]["StopSignal"] == "SIGRTMIN+3"
    assert not any(m.get("Destination", "").startswith("/sys") for m in attrs["Mounts"])
    # A private cgroup namespace: PID 1 sits at the root of every hierarchy it can see.
    cgroups = fleet_kinds.run(systemd_host.name, "cat /proc/1/cgroup").stdout
    assert all(line.split(":", 2)[2] in ("/", "/init.scope") for line in cgroups.splitlines())


def test_a_memory_limit_set_by_systemd_is_enforced_by_the_kernel(fleet_kinds, systemd_host):
    hog = "import time; b=[]; [b.append(bytearray(8 << 20)) or time.sleep(0.05) for _ in range(64)]; print('survived')"
    out = fleet_kinds.run(systemd_host.name, "systemd-run --quiet --wait --collect -p MemoryMax=32M "
                                             f"-p MemorySwapMax=0 /usr/bin/python3 -c \"{hog}\"; echo rc=$?",
                          timeout=90)
    assert "rc=0" not in out.stdout and "survived" not in out.stdout, out


def test_a_stopped_systemd_host_starts_again_at_the_same_port_with_systemd(fleet_kinds, systemd_host):
    fleet_kinds.stop_host(systemd_host.name, timeout=20)
    again = fleet_kinds.start_host(systemd_host.name)
    assert (again.port, again.host_key, again.kind) == (systemd_host.port, systemd_host.host_key, "systemd")
    out = fleet_kinds.run(systemd_host.name, "cat /proc/1/comm; systemctl is-system-running --wait", timeout=90)
    assert out.stdout.split()[0] == "systemd"
    assert out.stdout.split()[1] in ("running", "degraded")


# -- PM2 ---------------------------------------------------------------------------------


def test_the_pm2_host_runs_debians_node_and_the_pinned_pm2_whose_daemon_answers_json(fleet_kinds, pm2_host):
    lock = json.loads((REPO_ROOT / "fleet/images/pm2/npm/package-lock.json").read_text())
    out = fleet_kinds.run(pm2_host.name, "node --version; dpkg-query -W -f '${Version}\\n' nodejs; "
                                         "PM2_DISCRETE_MODE=true pm2 --version; pm2 jlist")
    node, debian_version, pm2_version, jlist = out.stdout.splitlines()[:4]
    assert node.startswith("v") and node[1:] in debian_version
    assert pm2_version == lock["packages"]["node_modules/pm2"]["version"]
    # The daemon was started at boot, so even without PM2_DISCRETE_MODE jlist prints JSON only.
    assert isinstance(json.loads(jlist), list)
    assert fleet_kinds.run(pm2_host.name, "pgrep -f 'PM2 v.*God Daemon'").ok


def test_the_pm2_host_keeps_supervisord_and_its_demo_programs(fleet_kinds, pm2_host):
    out = fleet_kinds.run(pm2_host.name, "supervisorctl status sleeper")
    assert out.stdout.split()[:2] in (["sleeper", "RUNNING"], ["sleeper", "STARTING"])


# -- puppet ------------------------------------------------------------------------------


def test_the_puppet_host_has_debians_puppet_and_facter_and_no_agent_running(fleet_puppet, puppet_host):
    out = fleet_puppet.run(puppet_host.name, "puppet --version; facter --version; "
                                             "dpkg-query -W -f '${Version}\\n' puppet-agent; "
                                             "pgrep -x puppet || echo no-agent; supervisorctl status sleeper")
    puppet_version, facter_version, package, agent, sleeper = out.stdout.splitlines()[:5]
    assert package.startswith(puppet_version) and puppet_version.startswith("7.")
    assert facter_version.startswith("4.")
    assert agent == "no-agent"
    assert sleeper.split()[1] in ("STARTING", "RUNNING")  # the base host's supervisord and demo programs
