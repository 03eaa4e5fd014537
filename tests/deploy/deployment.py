"""Helpers of the deployment tests: the portal's images, settings of a throwaway deployment, containers'
health, bootstrap and the client script run on this machine or inside a container."""
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import ROOT, missing

BUILD = ROOT / "scripts" / "build-portal-images.sh"
CLIENT = Path(__file__).with_name("portal_client.py")


def need(command):
    if not shutil.which(command):
        missing(f"{command} is missing (scripts/ensure-docker.sh installs the engine, scripts/test-prereqs.sh "
                "Debian's docker-compose)")
    if command == "docker" and subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        missing("the Docker engine does not answer: run scripts/ensure-docker.sh")


def build_images():
    """Build (or find, by recipe hash) the deployment's images: {"postgres": tag, "redis": ..., "lb": ..., ...}."""
    need("docker")
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert result.returncode == 0, f"building the images failed:\n{result.stderr[-4000:]}"
    tags = result.stdout.split()
    found = {tag.split(":")[0].split("/")[1]: tag for tag in tags}
    assert set(found) == {"postgres", "redis", "lb", "portal-base", "portal"}, tags
    return found


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(images, **extra):
    """The environment a deployment reads: fresh secrets, plain HTTP on 127.0.0.1, the images built."""
    from cryptography.fernet import Fernet

    return {**os.environ, "SECRET_KEY": secrets.token_urlsafe(50), "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(16), "HTTPS": "false", "TRUSTED_PROXIES": "127.0.0.1",
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "PORTAL_IMAGE": images["portal"],
            "POSTGRES_IMAGE": images["postgres"], "REDIS_IMAGE": images["redis"], "LB_IMAGE": images["lb"],
            "WORKER_CONCURRENCY": "2",
            **extra}


def run(args, env=None, timeout=300, check=True, stdin=None):
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, input=stdin)
    if check:
        assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


def health(container):
    out = run(["docker", "inspect", "-f", "{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}",
               container], check=False).stdout.split()
    return out[1] if len(out) == 2 else "gone"


def wait_healthy(containers_of, expected, timeout=420):
    """Wait until `containers_of()` lists `expected` containers, all healthy; return their ids and the
    seconds it took. On time-out, fail with each container's state and the tail of its log."""
    started = time.monotonic()
    while True:
        containers = containers_of()
        states = {c: health(c) for c in containers}
        if len(containers) == expected and all(s == "healthy" for s in states.values()):
            return containers, time.monotonic() - started
        if time.monotonic() - started > timeout:
            logs = "\n".join(f"--- {c} {s}\n{run(['docker', 'logs', '--tail', '15', c], check=False).stderr[-1500:]}"
                             for c, s in states.items() if s != "healthy")
            raise AssertionError(f"not healthy after {timeout}s: {states}\n{logs}")
        time.sleep(2)


def bootstrap(web_container):
    """`manage.py bootstrap` in the web container: the administrator's name and generated password."""
    out = run(["docker", "exec", web_container, "python", "manage.py", "bootstrap"], timeout=120).stdout
    found = re.search(r"Sign in as\s+(\S+)\s+with password\s+(\S+)", out)
    assert found, f"bootstrap printed no administrator: {out}"
    return found.group(1), found.group(2)


def client(args, container=None):
    """Run portal_client.py with `args`: on this machine, or inside `container` (the script on stdin)."""
    if container is None:
        result = run([str(ROOT / ".venv" / "bin" / "python"), str(CLIENT), *args], timeout=300)
    else:
        result = run(["docker", "exec", "-i", container, "python", "-", *args], timeout=300,
                     stdin=CLIENT.read_text())
    return json.loads(result.stdout)


class Compose:
    """One docker-compose project of the portal's docker-compose.yml (and `extra` override files),
    under its own project name and environment."""

    SERVICES = ("postgres", "redis", "web1", "web2", "lb", "worker", "beat", "watcher")

    def __init__(self, project, env, *extra):
        self.env = env
        self.argv = ["docker-compose", "-p", project, "-f", str(ROOT / "docker-compose.yml"),
                     *(arg for path in extra for arg in ("-f", str(path)))]
        self.project = project

    def __call__(self, *args, timeout=300, check=True):
        return run([*self.argv, *args], env=self.env, timeout=timeout, check=check)

    def containers(self):
        return self("ps", "-q").stdout.split()

    def container(self, service):
        return self("ps", "-q", service).stdout.strip()

    def up(self):
        """`up -d`, then wait until every service's container is healthy; the seconds it took."""
        started = time.monotonic()
        self("up", "-d", timeout=600)
        wait_healthy(self.containers, len(self.SERVICES))
        return time.monotonic() - started

    def down(self, *args):
        self("down", *args, timeout=300, check=False)

    def volumes(self):
        return run(["docker", "volume", "ls", "-q", "--filter",
                    f"label=com.docker.compose.project={self.project}"]).stdout.split()


def wait_until_gone(containers_of, timeout=180):
    deadline = time.monotonic() + timeout
    while containers_of():
        assert time.monotonic() < deadline, f"containers still there after {timeout}s: {containers_of()}"
        time.sleep(1)
