"""Leftovers of a crashed run are found by their labels and removed; kept runs stay."""

import os
import secrets
import subprocess
import sys

import pytest

from fleet import hosts as fleet_hosts
from fleet.recipes import REPO_ROOT

pytestmark = pytest.mark.fleet

CRASHING_RUN = """
import os, sys, fleet
fleet.Fleet.up(1, run_id=sys.argv[1], name_prefix="crashed")
fleet.Fleet.up(1, run_id=sys.argv[2], name_prefix="kept", keep=True)
os._exit(0)  # no teardown: as if the process had been killed
"""


def test_cleanup_removes_a_crashed_run_and_keeps_a_kept_one(docker_client, fleet_images):
    crashed, kept = f"crash-{secrets.token_hex(3)}", f"kept-{secrets.token_hex(3)}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", CRASHING_RUN, crashed, kept], env=env, check=True, timeout=120)
    try:
        runs = fleet_hosts.list_runs(docker_client)
        assert runs[crashed]["containers"] == 1 and not runs[crashed]["alive"]
        assert runs[kept]["keep"]

        assert crashed in fleet_hosts.cleanup_leftovers(docker_client)
        runs = fleet_hosts.list_runs(docker_client)
        assert crashed not in runs and kept in runs
        assert not docker_client.networks.list(filters={"label": f"{fleet_hosts.LABEL_RUN}={crashed}"})
        assert not (fleet_hosts.fleet_dir() / crashed).exists()
    finally:
        fleet_hosts.remove_run(docker_client, crashed)
        fleet_hosts.remove_run(docker_client, kept)
    assert kept not in fleet_hosts.list_runs(docker_client)
