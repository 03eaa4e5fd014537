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
    assert set(services) == {"postgres", "redis", "web", "worker", "beat", "watcher"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_portal_services_wait_for_healthy_dependencies_and_share_settings(resolved):
    """web migrates the schema before it is healthy; the other portal processes start after it."""
    services = resolved["services"]
    datastores = {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    assert services["web"]["depends_on"] == datastores
    assert "manage.py migrate_locked &&" in " ".join(services["web"]["command"])  # replicas starting together
    for name in ("web", "worker", "beat", "watcher"):
        service = services[name]
        if name != "web":
            assert service["depends_on"] == {**datastores, "web": {"condition": "service_healthy"}}
        env = service["environment"]
        assert env["DATABASE_URL"] == "postgres://portal:pw@postgres:5432/portal"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["DEBUG"] == "false" and env["SECRET_KEY"] == "sk"
    assert "worker" in services["worker"]["command"] and "beat" in services["beat"]["command"]
    assert services["web"]["ports"] == ["127.0.0.1:8000:8000/tcp"]


def test_web_and_worker_count_metrics_into_one_tmpfs_directory(resolved):
    """The web's /metrics sums the worker's task counts (prometheus_client's multiprocess mode)."""
    services = resolved["services"]
    for name in ("web", "worker"):
        assert services[name]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/srv/portal/metrics"
        assert "metrics:/srv/portal/metrics:rw" in services[name]["volumes"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["beat"]["environment"]
    assert resolved["volumes"]["metrics"]["driver_opts"]["type"] == "tmpfs"  # emptied when the deployment stops


def test_forwarding_headers_are_trusted_from_the_named_proxy_only(resolved):
    """daphne must not rewrite the client from X-Forwarded-For itself (--proxy-headers trusts
    anyone); the portal reads it from TRUSTED_PROXIES only."""
    for name in ("web", "worker", "beat"):
        service = resolved["services"][name]
        assert "--proxy-headers" not in " ".join(service.get("command") or [])
        assert service["environment"]["TRUSTED_PROXIES"] == "172.18.0.1"
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
        assert images == {"postgres": "opsportal/postgres:latest", "redis": "opsportal/redis:latest",
                          **{name: "opsportal/portal:latest" for name in ("web", "worker", "beat", "watcher")}}
        assert not any("build" in service for service in document["services"].values())


def test_the_stack_has_the_same_services_resolved_by_dns_and_publishes_nothing(resolved, stack):
    """Without IPVS (docs/FLEET.md) Swarm's virtual IPs and routing mesh do not work: dnsrr, no ingress port."""
    services = stack["services"]
    assert set(services) == set(resolved["services"])
    for name, service in services.items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert service["deploy"]["replicas"] == 1, name
        assert service["healthcheck"]["test"] == resolved["services"][name]["healthcheck"]["test"], name
        assert "ports" not in service, name
        assert service.get("command") == resolved["services"][name].get("command"), name
    for name in ("web", "worker", "beat", "watcher"):
        assert services[name]["environment"] == resolved["services"][name]["environment"], name
    assert set(stack["volumes"]) == set(resolved["volumes"])


def test_the_stacks_publishing_override_uses_host_mode():
    document = yaml.safe_load((ROOT / "deploy" / "stack.publish.yml").read_text())
    (port,) = document["services"]["web"]["ports"]
    assert port["mode"] == "host" and port["target"] == 8000


def test_portal_healthchecks_probe_readyz_and_heartbeats_without_django(resolved):
    tests = {name: resolved["services"][name]["healthcheck"]["test"] for name in ("web", "worker", "beat", "watcher")}
    assert tests == {name: ["CMD", "portal-probe", name] for name in tests}
    probe = (ROOT / "deploy" / "images" / "portal" / "probe.py").read_text()
    assert "/readyz?check=database,redis" in probe and "import django" not in probe
