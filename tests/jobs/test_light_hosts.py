"""A job of 200 light hosts (fleet/light.py) through a live worker and the real SSH backend: every target
ok, each with its own host's output, every host key pinned as registered."""
import io
import time

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import JobEvent, JobTarget
from tests import factories
from tests.helpers import act, fleet_credential, fleet_host, person
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.light]


def test_a_job_on_200_light_hosts_completes_with_every_target_ok(light_fleet, live_worker):
    hosts = light_fleet.hosts[:200]
    env = factories.environment("light")
    actor = act(person(env, Role.ADMIN))
    credential = fleet_credential(actor, env, light_fleet)
    for host in hosts:
        fleet_host(actor, env, credential, host, tags=["light"])
    started = time.monotonic()
    job = launch_adhoc(actor, environment=env, action="host.command", values={"command": "uname -a"},
                       selector={"tags": ["light"]}, strategy={"kind": "parallel", "limit": 50})
    job = wait_job(job, JobState.SUCCEEDED, timeout=120)
    took = time.monotonic() - started
    assert job.targets_done == len(hosts) and job.targets_failed == 0
    targets = list(JobTarget.objects.filter(job=job).values_list("index", "name", "state", "exit_code"))
    assert len(targets) == len(hosts)
    assert {(state, code) for _, _, state, code in targets} == {(TargetState.OK, 0)}
    # Each target's output is its own host's uname line (a per-host hostname): no crossed wires.
    names = {index: name for index, name, _, _ in targets}
    lines = JobEvent.objects.filter(job=job, stream="stdout").values_list("target", "text")
    seen = {}
    for index, text in lines:
        seen.setdefault(index, []).append(text)
    assert len(seen) == len(hosts)
    for index, texts in seen.items():
        assert len(texts) == 1 and texts[0].startswith(f"Linux {names[index]} "), texts
    assert took < 60, f"200 light hosts took {took:.1f}s"


def test_register_fleet_registers_a_light_inventory_with_each_host_key_pinned(light_fleet):
    from django.core.management import call_command

    from ops_portal.inventory.models import Host

    env = factories.environment("light-registered")
    call_command("register_fleet", str(light_fleet.inventory_path), environment=env.name, tag="light",
                 stdout=io.StringIO())
    registered = {h.name: h for h in Host.objects.filter(environment=env)}
    assert len(registered) == len(light_fleet.hosts)
    for host in light_fleet.hosts[:20]:
        row = registered[host.name]
        assert (row.address, row.port, row.host_key, row.tags) == (host.address, host.port, host.host_key, ["light"])
