"""The fleet against the real engine: pinned SSH to every host, supervisord, Swarm, app images."""

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import docker
import paramiko
import pytest

from fleet import hosts as fleet_hosts
from fleet import ssh
from fleet.engine import swarm_state
from tests.helpers import wait_until

pytestmark = pytest.mark.fleet


def _login_everywhere(fleet, command):
    """Run command on every host over SSH, trusting only the run's known_hosts file."""

    def one(host):
        client = paramiko.SSHClient()
        client.load_host_keys(str(fleet.known_hosts_path))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(host.address, port=host.port, username=host.user, key_filename=host.key_path,
                       look_for_keys=False, allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10)
        try:
            return ssh.run(client, command).check().stdout
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        return dict(zip([h.name for h in fleet.hosts], pool.map(one, fleet.hosts), strict=True))


def test_every_host_accepts_a_pinned_login_with_its_own_name_and_key(fleet):
    out = _login_everywhere(fleet, "hostname; cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")
    names = {name: text.splitlines()[0] for name, text in out.items()}
    keys = {name: text.splitlines()[1] for name, text in out.items()}
    assert names == {h.name: h.name for h in fleet.hosts}
    assert len(set(keys.values())) == len(fleet.hosts)
    assert keys == {h.name: h.host_key for h in fleet.hosts}
    assert all(h.address == "127.0.0.1" and h.user == "root" for h in fleet.hosts)


def test_a_host_presenting_another_key_is_rejected(fleet, tmp_path):
    first, second = fleet.hosts[0], fleet.hosts[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{first.port} {second.host_key}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        ssh.connect(first, wrong).close()
    unknown = tmp_path / "empty"
    unknown.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        ssh.connect(first, unknown).close()


def test_sshd_offers_public_key_authentication_only(fleet):
    host = fleet.hosts[0]
    transport = paramiko.Transport((host.address, host.port))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType) as refused:
            transport.auth_none("root")
        assert refused.value.allowed_types == ["publickey"]
    finally:
        transport.close()
    effective = fleet.run(host.name, "sshd -T").stdout.lower().splitlines()
    for line in ("permitrootlogin without-password", "passwordauthentication no",
                 "kbdinteractiveauthentication no", "x11forwarding no", "allowtcpforwarding no"):
        assert line in effective


def test_hosts_have_the_tools_later_tests_use(fleet):
    result = fleet.run(fleet.hosts[0].name, "for t in ps pkill tar gzip ss setsid python3 supervisorctl; "
                                            "do command -v $t >/dev/null || echo missing $t; done")
    assert result.ok and result.stdout == ""


def test_files_can_be_put_over_sftp(fleet, tmp_path):
    local = tmp_path / "app.conf"
    local.write_text("workers = 4\n")
    name = fleet.hosts[0].name
    client = fleet.ssh(name)
    try:
        with client.open_sftp() as sftp:
            sftp.put(str(local), "/tmp/app.conf")
    finally:
        client.close()
    assert fleet.run(name, "cat /tmp/app.conf; rm /tmp/app.conf").stdout == "workers = 4\n"


def test_the_engine_lists_the_fleet_containers(fleet, docker_client):
    found = docker_client.containers.list(filters={"label": f"{fleet_hosts.LABEL_RUN}={fleet.run_id}"})
    assert {c.id for c in found} == {h.container_id for h in fleet.hosts}
    assert all(c.labels[fleet_hosts.LABEL] == "1" for c in found)


def test_swarm_is_active(docker_client):
    assert swarm_state(docker_client) == "active"
    assert docker_client.info()["Swarm"]["NodeAddr"] == "127.0.0.1"


def test_supervisord_runs_the_demo_programs(fleet):
    name = fleet.hosts[-1].name

    def statuses():
        out = fleet.run(name, "supervisorctl status").stdout
        found = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
        return found if found.get("sleeper") == found.get("ticker") == "RUNNING" else None

    assert wait_until(statuses, 15, interval=0.3) == {"sleeper": "RUNNING", "ticker": "RUNNING", "spare": "STOPPED"}


def test_supervisord_answers_xml_rpc_on_its_unix_socket(fleet):
    probe = (
        "python3 -c \"import json, xmlrpc.client; "
        "from supervisor.xmlrpc import SupervisorTransport; "
        "t = SupervisorTransport(None, None, 'unix:///run/supervisor.sock'); "
        "p = xmlrpc.client.ServerProxy('http://127.0.0.1', transport=t); "
        "print(json.dumps({i['name']: i['statename'] for i in p.supervisor.getAllProcessInfo()}))\""
    )

    def states():
        found = json.loads(fleet.run(fleet.hosts[0].name, probe).check().stdout)
        return found if found.get("sleeper") == found.get("ticker") == "RUNNING" else None

    assert wait_until(states, 15, interval=0.3) == {"sleeper": "RUNNING", "ticker": "RUNNING", "spare": "STOPPED"}


def test_docker_exec_reaches_the_host_and_can_fill_its_small_disk(fleet):
    name = fleet.hosts[0].name
    assert fleet.exec(name, "hostname").stdout.strip() == name
    filled = fleet.exec(name, "dd if=/dev/zero of=/mnt/data/fill bs=1M count=100 2>/dev/null; "
                              "df -P /mnt/data | tail -1; rm -f /mnt/data/fill")
    assert "100%" in filled.stdout


def test_orphans_are_reaped(fleet):
    name = fleet.hosts[0].name
    out = fleet.run(name, "sh -c 'sleep 0.2 & exit 0'; sleep 1; ps -eo stat=,pid=,comm= | awk '$1 ~ /^Z/'")
    assert out.ok and out.stdout.strip() == ""


# -- app images ------------------------------------------------------------------


@pytest.fixture
def run_app(docker_client):
    """run_app(image, **kwargs) -> container, labelled so any leftover is found and removed."""
    started = []
    labels = {fleet_hosts.LABEL: "1", fleet_hosts.LABEL_RUN: f"apps-test-{threading.get_native_id()}",
              fleet_hosts.LABEL_OWNER: fleet_hosts._owner(), fleet_hosts.LABEL_KEEP: "0"}

    def run(image, **kwargs):
        container = docker_client.containers.run(image, detach=True, labels=labels, **kwargs)
        started.append(container)
        container.reload()
        return container

    yield run
    for container in started:
        container.remove(force=True)


def _published(container, port="8080/tcp"):
    binding = container.attrs["NetworkSettings"]["Ports"][port][0]
    assert binding["HostIp"] == "127.0.0.1"
    return f"http://127.0.0.1:{binding['HostPort']}"


def _get(url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.status, resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_web_answers_with_its_hostname_and_version(run_app, fleet_images, version):
    web = run_app(f"opsportal/web:{version}", ports={"8080/tcp": ("127.0.0.1", None)})
    status, body = _get(_published(web) + "/")
    assert status == 200
    assert json.loads(body) == {"hostname": web.id[:12], "version": version, "role": "web"}
    assert _get(_published(web) + "/health") == (200, f"ok {version}\n")


def test_web_reports_healthy_to_the_engine(run_app, fleet_images):
    web = run_app("opsportal/web:v1")

    def health():
        web.reload()
        return web.attrs["State"]["Health"]["Status"] == "healthy"

    assert wait_until(health, 20, interval=0.3)


def test_crasher_exits_non_zero_after_the_configured_time(run_app, fleet_images):
    crasher = run_app("opsportal/crasher:latest", environment={"CRASH_AFTER": "1", "CRASH_CODE": "7"})
    assert crasher.wait(timeout=20)["StatusCode"] == 7


def test_burner_burns_cpu_on_demand(run_app, fleet_images):
    burner = run_app("opsportal/burner:latest", ports={"8080/tcp": ("127.0.0.1", None)})

    def cpu_seconds_per_second(container):
        # One-shot stats carry two samples a second apart.
        stats = container.stats(stream=False)
        used = stats["cpu_stats"]["cpu_usage"]["total_usage"] - stats["precpu_stats"]["cpu_usage"]["total_usage"]
        elapsed = stats["cpu_stats"]["system_cpu_usage"] - stats["precpu_stats"]["system_cpu_usage"]
        cores = stats["cpu_stats"].get("online_cpus") or 1
        return used / elapsed * cores

    resting = cpu_seconds_per_second(burner)
    status, body = _get(_published(burner) + "/cgi-bin/burn?seconds=6&workers=2")
    assert status == 200 and json.loads(body)["burning_seconds"] == 6
    burning = cpu_seconds_per_second(burner)
    # Compared with the same container at rest, so a busy machine does not fail the test.
    assert burning > 3 * resting and burning > 0.01, (burning, resting)


def test_a_swarm_service_runs_replicas_that_answer_on_127_0_0_1(docker_client, fleet_images):
    # This kernel has no IPVS: the ingress routing mesh and VIPs do not work, so services
    # publish in host mode (docker-proxy per task) and use DNS round robin.
    endpoint = docker.types.EndpointSpec(mode="dnsrr", ports=[
        {"TargetPort": 8080, "Protocol": "tcp", "PublishMode": "host"},
    ])
    service = docker_client.services.create(
        "opsportal/web:v1", name=f"fleet-smoke-{threading.get_native_id()}", mode=docker.types.ServiceMode(
            "replicated", replicas=2), endpoint_spec=endpoint, labels={fleet_hosts.LABEL: "1"},
    )
    try:
        def running():
            found = docker_client.containers.list(filters={"label": f"com.docker.swarm.service.id={service.id}"})
            return found if len(found) == 2 and all(c.status == "running" for c in found) else None

        containers = wait_until(running, 30, interval=0.3)
        assert containers, "two replicas should be running"
        answers = set()
        for container in containers:
            binding = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]
            status, body = _get(f"http://127.0.0.1:{binding['HostPort']}/")
            answers.add((status, json.loads(body)["version"], json.loads(body)["hostname"]))
        assert {(s, v) for s, v, _ in answers} == {(200, "v1")}
        assert len(answers) == 2
    finally:
        service.remove()


# -- last, because it changes a host (and puts it back) ------------------------------


def test_a_stopped_host_comes_back_at_its_port_with_its_key_and_files(fleet):
    host = fleet.hosts[-1]
    fleet.run(host.name, "echo kept > /root/marker").check()
    fleet.stop_host(host.name)
    with pytest.raises((paramiko.SSHException, OSError)):
        fleet.run(host.name, "true")

    back = fleet.start_host(host.name)
    assert (back.port, back.host_key) == (host.port, host.host_key)
    assert fleet.run(host.name, "cat /root/marker").stdout == "kept\n"
    with pytest.raises(docker.errors.NotFound):
        fleet.client.containers.get(host.container_id)
