"""docker-compose.yml and deploy/stack.yml are valid and wire the portal correctly.

Checked here against the compose-spec JSON schema shipped in Debian's docker-compose package and by
`docker-compose config`, which also resolves the anchors and variables; test_deployment.py runs them.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.helpers import ROOT, missing

SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
ENV = {"POSTGRES_PASSWORD": "pw", "SECRET_KEY": "sk", "ENCRYPTION_KEYS": "ek", "TRUSTED_PROXIES": "172.18.0.1"}


def _need(path_or_cmd):
    found = Path(path_or_cmd).exists() if "/" in str(path_or_cmd) else shutil.which(path_or_cmd)
    if not found:
        missing(f"{path_or_cmd} is missing (scripts/test-prereqs.sh installs Debian's docker-compose)")


@pytest.fixture(scope="module")
def resolved():
    _need("docker-compose")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
                            env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_file_matches_the_compose_schema():
    _need(SCHEMA)
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_every_service_has_a_healthcheck(resolved):
    services = resolved["services"]
    assert set(services) == {"postgres", "redis", "web1", "web2", "lb", "worker", "beat", "watcher"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_portal_services_wait_for_healthy_dependencies_and_share_settings(resolved):
    """The web replicas migrate the schema (one after the other) before they are healthy; the other
    portal processes start after them."""
    services = resolved["services"]
    datastores = {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    webs = {"web1": {"condition": "service_healthy"}, "web2": {"condition": "service_healthy"}}
    for name in ("web1", "web2"):
        assert services[name]["depends_on"] == datastores
        assert "manage.py migrate_locked &&" in " ".join(services[name]["command"])  # replicas starting together
    for name in ("web1", "web2", "worker", "beat", "watcher"):
        service = services[name]
        if not name.startswith("web"):
            assert service["depends_on"] == {**datastores, **webs}
        env = service["environment"]
        assert env["DATABASE_URL"] == "postgres://portal:pw@postgres:5432/portal"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["DEBUG"] == "false" and env["SECRET_KEY"] == "sk"
    assert "worker" in services["worker"]["command"] and "beat" in services["beat"]["command"]
    # One published address, on loopback: the load balancer's; the replicas publish nothing.
    assert services["lb"]["ports"] == ["127.0.0.1:8000:8000/tcp"]
    assert "ports" not in services["web1"] and "ports" not in services["web2"]


def test_the_load_balancer_has_a_fixed_address_and_finds_every_replica_by_name(resolved):
    services = resolved["services"]
    assert resolved["networks"]["default"]["ipam"]["config"] == [{"subnet": "10.213.7.0/24"}]
    assert services["lb"]["networks"]["default"]["ipv4_address"] == "10.213.7.250"
    for name in ("web1", "web2"):
        assert services[name]["networks"]["default"]["aliases"] == ["web"]
    assert services["web1"]["command"] == services["web2"]["command"]
    assert services["web1"]["environment"] == services["web2"]["environment"]
    config = (ROOT / "deploy" / "images" / "lb" / "haproxy.cfg").read_text()
    # Without a global maxconn HAProxy tries to raise its file limit and crash-loops in a container.
    assert "\n    maxconn 4096\n" in config
    assert "balance roundrobin" in config and "timeout tunnel" in config
    assert "uri /readyz?check=database,redis" in config and "option forwardfor" in config


def test_web_and_worker_count_metrics_into_one_tmpfs_directory(resolved):
    """The web's /metrics sums the worker's task counts (prometheus_client's multiprocess mode)."""
    services = resolved["services"]
    for name in ("web1", "web2", "worker"):
        assert services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/srv/portal/metrics"
        assert "metrics:/srv/portal/metrics:rw" in services[name]["volumes"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["beat"]["environment"]
    assert resolved["volumes"]["metrics"]["driver_opts"]["type"] == "tmpfs"  # emptied when the deployment stops


def test_forwarding_headers_are_trusted_from_the_named_proxy_only(resolved):
    """daphne must not rewrite the client from X-Forwarded-For itself (--proxy-headers trusts
    anyone); the portal reads it from TRUSTED_PROXIES only: the load balancer's fixed address and
    the TLS proxy's."""
    for name in ("web1", "web2", "worker", "beat"):
        service = resolved["services"][name]
        assert "--proxy-headers" not in " ".join(service.get("command") or [])
        assert service["environment"]["TRUSTED_PROXIES"] == "10.213.7.250,172.18.0.1"
        assert "BEHIND_PROXY" not in service["environment"]
    assert "--proxy-headers" not in (ROOT / "deploy" / "images" / "portal" / "Dockerfile").read_text()
    assert "--proxy-headers" not in (ROOT / "scripts" / "run-portal.sh").read_text()


def test_a_missing_secret_is_a_clear_error():
    _need("docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update({"POSTGRES_PASSWORD": "pw", "ENCRYPTION_KEYS": "ek"})
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode != 0 and "set SECRET_KEY" in result.stderr


def _healthcheck(process):
    from django.core.management import call_command

    with pytest.raises(SystemExit) as exit_info:
        call_command("healthcheck", process)
    return exit_info.value.code


@pytest.mark.django_db
def test_healthcheck_commands_follow_heartbeats():
    """The commands the compose healthchecks run report what Redis heartbeats say."""
    import socket

    from ops_portal.core import heartbeat
    from ops_portal.core import redis as portal_redis

    client = portal_redis.client()
    for key in client.scan_iter(match=portal_redis.key("heartbeat", "*")):
        client.delete(key)
    assert _healthcheck("web") == 0
    assert _healthcheck("worker") == 1 and _healthcheck("beat") == 1
    heartbeat.beat_once("worker", f"worker@{socket.gethostname()}")
    heartbeat.beat_once("beat", "beat")
    try:
        assert _healthcheck("worker") == 0 and _healthcheck("beat") == 0
    finally:  # a worker beating without queues would take every queue for later tests
        heartbeat.forget("worker", f"worker@{socket.gethostname()}")
        heartbeat.forget("beat", "beat")


@pytest.fixture(scope="module")
def stack():
    _need("docker-compose")
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "deploy" / "stack.yml"), "config"],
                            env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_every_image_is_one_built_here_offline(resolved, stack):
    """No registry is reachable: compose and the stack use only scripts/build-portal-images.sh's images."""
    for document in (resolved, stack):
        images = {name: service["image"] for name, service in document["services"].items()}
        webs = ("web",) if document is stack else ("web1", "web2")
        assert images == {"postgres": "opsportal/postgres:latest", "redis": "opsportal/redis:latest",
                          "lb": "opsportal/lb:latest",
                          **{name: "opsportal/portal:latest" for name in (*webs, "worker", "beat", "watcher")}}
        assert not any("build" in service for service in document["services"].values())


def test_the_stack_has_the_same_services_resolved_by_dns_and_publishes_nothing(resolved, stack):
    """Without IPVS (docs/FLEET.md) Swarm's virtual IPs and routing mesh do not work: dnsrr, no ingress
    port. compose's web1 and web2 are the stack's web, two tasks; lb finds them by the name web."""
    services = stack["services"]
    assert set(services) == set(resolved["services"]) - {"web1", "web2"} | {"web"}

    def composed(name):
        return resolved["services"]["web1" if name == "web" else name]

    for name, service in services.items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert service["deploy"]["replicas"] == (2 if name == "web" else 1), name
        assert service["healthcheck"]["test"] == composed(name)["healthcheck"]["test"], name
        assert "ports" not in service, name
        assert service.get("command") == composed(name).get("command"), name
    for name in ("worker", "beat", "watcher"):
        env = dict(services[name]["environment"])
        # Swarm gives no fixed address: the stack's own network is trusted instead of lb's address.
        assert env.pop("TRUSTED_PROXIES") == "10.213.8.0/24,172.18.0.1"
        assert env == {k: v for k, v in composed(name)["environment"].items() if k != "TRUSTED_PROXIES"}, name
    assert services["web"]["environment"] == services["worker"]["environment"]
    assert services["lb"]["environment"] == composed("lb")["environment"]
    assert stack["networks"]["default"]["ipam"]["config"] == [{"subnet": "10.213.8.0/24"}]
    assert set(stack["volumes"]) == set(resolved["volumes"])


def test_the_stacks_publishing_override_uses_host_mode():
    document = yaml.safe_load((ROOT / "deploy" / "stack.publish.yml").read_text())
    assert set(document["services"]) == {"lb"}
    (port,) = document["services"]["lb"]["ports"]
    assert port["mode"] == "host" and port["target"] == 8000


def test_portal_healthchecks_probe_readyz_and_heartbeats_without_django(resolved):
    names = ("web1", "web2", "worker", "beat", "watcher")
    tests = {name: resolved["services"][name]["healthcheck"]["test"] for name in names}
    assert tests == {name: ["CMD", "portal-probe", name.rstrip("12")] for name in tests}
    probe = (ROOT / "deploy" / "images" / "portal" / "probe.py").read_text()
    assert "/readyz?check=database,redis" in probe and "import django" not in probe
