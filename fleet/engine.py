"""The Docker engine the fleet runs on: make sure it answers, in Swarm mode."""

import subprocess

import docker

from .recipes import REPO_ROOT

ENSURE_SCRIPT = REPO_ROOT / "scripts" / "ensure-docker.sh"


class EngineError(RuntimeError):
    """No usable Docker engine (and scripts/ensure-docker.sh could not make one)."""


def ensure_engine(timeout=900):
    """Run scripts/ensure-docker.sh: install/start dockerd if needed, init Swarm if needed.

    Idempotent and quick (well under a second) when everything is in place already.
    Raise EngineError with the script's output when it fails.
    """
    try:
        proc = subprocess.run(
            ["bash", str(ENSURE_SCRIPT)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineError(f"{ENSURE_SCRIPT} did not complete: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise EngineError(f"{ENSURE_SCRIPT} failed (exit {proc.returncode}):\n{tail}")
    return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def docker_client(timeout=120):
    """Return a Docker SDK client for the local engine, API version negotiated."""
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EngineError(f"no Docker engine answers: {exc}") from exc
    return client


def swarm_state(client):
    """Return the engine's Swarm state: "active", "inactive", "pending", "error" or "locked"."""
    return client.info().get("Swarm", {}).get("LocalNodeState", "")
