"""The deployment's image recipes and the image's healthcheck probe, without building anything.

scripts/build-portal-images.sh tags each image by the hash of its recipe: a change rebuilds exactly
the images whose recipe it touches. The probe (deploy/images/portal/probe.py, `portal-probe` in the
image) gives the healthchecks' verdicts from Redis heartbeats and /readyz.
"""
import importlib.util
import shutil
import socket
import subprocess

import pytest

from tests.helpers import ROOT

RECIPE_PATHS = ("deploy", "scripts", "requirements.txt", "ops_portal", "schedulers", "templates", "static",
                "manage.py")


def _tags(root):
    result = subprocess.run([str(root / "scripts" / "build-portal-images.sh"), "--tags"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(tag.split(":") for tag in result.stdout.split())


@pytest.fixture
def checkout(tmp_path):
    """A copy of what the recipes hash (the script hashes the tree it lies in)."""
    for rel in RECIPE_PATHS:
        source = ROOT / rel
        if source.is_dir():
            shutil.copytree(source, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tmp_path / rel)
    return tmp_path


def test_a_code_change_rebuilds_only_the_portal_image(checkout):
    before = _tags(checkout)
    assert before == _tags(ROOT)  # the copy hashes like the checkout: the hash is of content, not place
    (checkout / "ops_portal" / "core" / "health.py").write_text("# changed\n", encoding="utf-8")
    after = _tags(checkout)
    assert after["opsportal/portal"] != before["opsportal/portal"]
    assert {k: v for k, v in after.items() if k != "opsportal/portal"} == \
        {k: v for k, v in before.items() if k != "opsportal/portal"}


def test_a_requirements_change_rebuilds_the_base_and_the_portal_not_the_datastores(checkout):
    before = _tags(checkout)
    with open(checkout / "requirements.txt", "a", encoding="utf-8") as requirements:
        requirements.write("# changed\n")
    after = _tags(checkout)
    changed = {repo for repo in before if after[repo] != before[repo]}
    assert changed == {"opsportal/portal-base", "opsportal/portal"}


def test_a_database_recipe_change_rebuilds_only_postgres(checkout):
    before = _tags(checkout)
    with open(checkout / "deploy" / "images" / "postgres" / "packages", "a", encoding="utf-8") as packages:
        packages.write("# changed\n")
    after = _tags(checkout)
    assert {repo for repo in before if after[repo] != before[repo]} == {"opsportal/postgres"}


def test_a_load_balancer_recipe_change_rebuilds_only_the_lb(checkout):
    before = _tags(checkout)
    with open(checkout / "deploy" / "images" / "lb" / "haproxy.cfg", "a", encoding="utf-8") as config:
        config.write("# changed\n")
    after = _tags(checkout)
    assert {repo for repo in before if after[repo] != before[repo]} == {"opsportal/lb"}


@pytest.fixture
def probe():
    spec = importlib.util.spec_from_file_location("portal_probe", ROOT / "deploy" / "images" / "portal" / "probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("allowed", "expected"), [
    ("ops.example.com,localhost", "ops.example.com"),
    ("*", "localhost"),
    (".example.com", "example.com"),
    ("", "localhost"),
])
def test_the_probe_asks_readyz_with_a_host_the_portal_answers_to(probe, monkeypatch, allowed, expected):
    monkeypatch.setenv("ALLOWED_HOSTS", allowed)
    assert probe._host_header() == expected


def test_the_probe_finds_no_web_where_nothing_listens(probe):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert probe.web(port) is False


@pytest.mark.django_db
def test_the_probe_follows_this_containers_heartbeats_in_redis(probe, monkeypatch):
    from django.conf import settings

    from ops_portal.core import heartbeat
    from ops_portal.core import redis as portal_redis

    monkeypatch.setenv("REDIS_URL", settings.REDIS_URL)
    monkeypatch.setenv("REDIS_PREFIX", settings.REDIS_PREFIX)
    client = portal_redis.client()
    for key in client.scan_iter(match=portal_redis.key("heartbeat", "*")):
        client.delete(key)
    assert [probe.main(["portal-probe", kind]) for kind in ("worker", "beat", "watcher")] == [1, 1, 1]
    made = [("worker", f"worker@{socket.gethostname()}"), ("watcher", "watcher@another-container"), ("beat", "beat")]
    for kind, name in made:
        heartbeat.beat_once(kind, name)
    try:
        # worker and watcher: only this container's counts; beat: any.
        assert [probe.main(["portal-probe", kind]) for kind in ("worker", "beat", "watcher")] == [0, 0, 1]
        assert probe.main(["portal-probe", "nonsense"]) == 2
    finally:  # a worker beating without queues would take every queue for later tests
        for kind, name in made:
            heartbeat.forget(kind, name)


def test_the_probe_says_unhealthy_when_redis_does_not_answer(probe, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    assert probe.heartbeat("worker") is False
