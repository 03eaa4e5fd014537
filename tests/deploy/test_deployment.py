"""The portal deployed from its own images, built here offline: docker-compose and a Swarm stack come up
healthy, run a job signed in through the API, keep their data across down/up, and leave nothing behind.

Each test builds the images first (cached by recipe hash: seconds when nothing changed) and deploys
under a name of its own, so runs do not meet. Compose publishes the load balancer (lb, in front of
web1 and web2) on a free port of 127.0.0.1; the stack publishes nothing (host-mode ports bind every
interface) and its lb is reached from inside a web container. `make deploy-check` runs this module
and test_web_replicas.py.
"""
import os
import subprocess
import time

import pytest

from tests.deploy import deployment as d

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(2400)]

# Eight containers both ways: compose's web1 and web2 are the stack's two tasks of web.
SERVICES = d.Compose.SERVICES
# `id -un` proves the command ran as the image's unprivileged user; `uname -n` names the container.
COMMAND = "echo ran-by=$(id -un)@$(uname -n)"


def _check_job(result, worker_hostname):
    job = result["job"]
    assert job["state"] == "succeeded", result
    # The host is the machine the worker runs on (bootstrap's local host): the job ran in the worker.
    assert f"ran-by=portal@{worker_hostname}" in result["output"], result["output"]


def _hostname(container):
    return d.run(["docker", "inspect", "-f", "{{.Config.Hostname}}", container]).stdout.strip()


def test_compose_brings_the_portal_up_healthy_runs_a_job_and_keeps_its_data(images, capsys):
    d.need("docker")
    d.need("docker-compose")
    port = d.free_port()
    compose = d.Compose(f"opsportal-ci-{os.getpid()}",
                        d.settings(images, WEB_PORT=str(port), PORTAL_URL=f"http://127.0.0.1:{port}"))
    try:
        first_up = compose.up()
        published = d.run(["docker", "port", compose.container("lb"), "8000/tcp"]).stdout.split()
        assert published == [f"127.0.0.1:{port}"]  # loopback only

        user, password = d.bootstrap(compose.container("web1"))
        base = f"http://127.0.0.1:{port}"
        result = d.client([base, "run", user, password, "development", COMMAND])
        _check_job(result, _hostname(compose.container("worker")))

        # down keeps the named volumes: the token, the job and its output are still there.
        compose("down")
        assert compose.containers() == []
        second_up = compose.up()
        again = d.client([base, "job", result["token"], str(result["job"]["id"])])
        assert again["job"]["state"] == "succeeded" and again["output"] == result["output"]
        with capsys.disabled():
            print(f"\ncompose: healthy {first_up:.0f}s after up (first start, migrations), "
                  f"{second_up:.0f}s after the second up")
    finally:
        compose.down("-v", "--timeout", "30")
    assert compose.volumes() == []


def _stack_containers(stack, every=False):
    """The stack's running containers (`every`: stopped ones too, which Swarm removes a moment later)."""
    def containers():
        return d.run(["docker", "ps", *(["-a"] if every else []), "-q", "--filter",
                      f"label=com.docker.stack.namespace={stack}"]).stdout.split()
    return containers


def _stack_container(stack, service, tasks=1):
    """A container of the service (which runs `tasks` of them)."""
    ids = d.run(["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={stack}_{service}"]).stdout
    assert len(ids.split()) == tasks, f"{service}: {ids!r}"
    return ids.split()[0]


def _stack_rm(stack):
    d.run(["docker", "stack", "rm", stack], check=False, timeout=120)
    d.wait_until_gone(_stack_containers(stack, every=True))
    # The stack's network goes a moment after its containers; a deploy before then fails.
    deadline = time.monotonic() + 60
    networks = ["docker", "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={stack}"]
    while d.run(networks).stdout.strip():
        assert time.monotonic() < deadline, f"the network of {stack} is still there"
        time.sleep(1)


def test_a_swarm_stack_brings_the_portal_up_healthy_runs_a_job_and_keeps_its_data(images, capsys):
    d.need("docker")
    swarm = d.run(["docker", "info", "-f", "{{.Swarm.LocalNodeState}}"]).stdout.strip()
    if swarm != "active":
        d.missing(f"the engine is not in Swarm mode ({swarm}): run scripts/ensure-docker.sh")
    stack = f"opsportal-ci-{os.getpid()}"
    # The client runs in a web container and goes through lb, by its name on the stack's network.
    env = d.settings(images, ALLOWED_HOSTS="127.0.0.1,localhost,lb")
    deploy = ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(d.ROOT / "deploy" / "stack.yml"),
              stack]
    containers = _stack_containers(stack)
    try:
        started = time.monotonic()
        d.run(deploy, env=env, timeout=300)
        d.wait_healthy(containers, len(SERVICES))
        first_up = time.monotonic() - started
        web = _stack_container(stack, "web", tasks=2)
        for name in ("web", "lb"):
            for one in d.run(["docker", "ps", "-q", "--filter",
                              f"label=com.docker.swarm.service.name={stack}_{name}"]).stdout.split():
                ports = d.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Ports}}", one]).stdout
                assert "HostPort" not in ports  # nothing published

        user, password = d.bootstrap(web)
        result = d.client(["http://lb:8000", "run", user, password, "development", COMMAND], container=web)
        _check_job(result, _hostname(_stack_container(stack, "worker")))

        _stack_rm(stack)
        started = time.monotonic()
        d.run(deploy, env=env, timeout=300)
        d.wait_healthy(containers, len(SERVICES))
        second_up = time.monotonic() - started
        web = _stack_container(stack, "web", tasks=2)
        again = d.client(["http://lb:8000", "job", result["token"], str(result["job"]["id"])], container=web)
        assert again["job"]["state"] == "succeeded" and again["output"] == result["output"]
        with capsys.disabled():
            print(f"\nstack: healthy {first_up:.0f}s after deploy (first start), {second_up:.0f}s after the second")
    finally:
        _stack_rm(stack)
        volumes = [f"{stack}_{volume}" for volume in ("postgres-data", "redis-data", "metrics")]
        subprocess.run(["docker", "volume", "rm", *volumes], capture_output=True, timeout=60)
    assert d.run(["docker", "volume", "ls", "-q", "--filter", f"name={stack}_"]).stdout.split() == []
