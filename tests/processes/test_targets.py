"""The process target kind: selectors checked before anything is resolved, processes of the job's
environment only, and a fingerprint that names the process by its start time."""
import pytest
from django.core.exceptions import ValidationError

from ops_portal.core import targets
from ops_portal.inventory.choices import Transport
from ops_portal.processes import store
from ops_portal.processes.targets import PROCESSES
from tests import factories
from tests.processes.helpers import proc, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    web1, web2 = factories.host(alpha, "web-1"), factories.host(alpha, "web-2")
    other = factories.host(beta, "db-1")
    for host in (web1, web2, other):
        store.store_scan(host.pk, snapshot([proc(1, "init", ppid=0), proc(100, "nginx"), proc(200, "sshd")]))
    return alpha, beta, web1, web2, other


@pytest.mark.parametrize("selector, message", [
    ({"kind": "process", "all": True}, "never acts on every process"),
    ({"kind": "process", "hosts": ["web-1"]}, "Say which processes"),
    ({"kind": "process", "pids": [100]}, "Pids need hosts"),
    ({"kind": "process", "hosts": ["web-1;reboot"], "pids": [100]}, "hosts must be a list of host names"),
    ({"kind": "process", "hosts": ["web-1"], "pids": ["100; kill -9 1"]}, "pids must be a list of pids"),
    ({"kind": "process", "hosts": ["web-1"], "pids": [True]}, "pids must be a list of pids"),
    ({"kind": "process", "names": ["nginx\n"]}, "names must be a list of process names"),
    ({"kind": "process", "ids": [0]}, "ids must be a list of process ids"),
    ({"kind": "process", "pattern": "$(id)", "names": ["nginx"]}, "pattern must be"),
    ({"kind": "process", "ids": [1], "command": "x"}, "Unknown selector keys: command"),
])
def test_bad_selectors_are_refused_with_the_reason(selector, message):
    with pytest.raises(ValidationError) as caught:
        targets.validate(selector)
    assert message in " ".join(caught.value.message_dict["selector"])


def test_selectors_resolve_processes_of_the_environment_only(world):
    alpha, beta, web1, web2, other = world
    by_pid = targets.resolve({"kind": "process", "hosts": ["web-1", "db-1"], "pids": [100]}, alpha)
    assert [t["name"] for t in by_pid] == ["web-1 pid 100 (nginx)"]
    by_name = targets.resolve({"kind": "process", "pattern": "web-*", "names": ["sshd"]}, alpha)
    assert [t["name"] for t in by_name] == ["web-1 pid 200 (sshd)", "web-2 pid 200 (sshd)"]
    beta_id = other.processes.get(pid=100).pk
    assert targets.resolve({"kind": "process", "ids": [beta_id]}, alpha) == []


def test_the_fingerprint_names_the_host_and_the_process_by_its_start_time(world):
    alpha, _, web1, _, _ = world
    (entry,) = targets.resolve({"kind": "process", "hosts": ["web-1"], "pids": [100]}, alpha)
    fingerprint = entry["fingerprint"]
    assert (fingerprint["pid"], fingerprint["start_time"], fingerprint["name"]) == (100, 1_700_000_000.0, "nginx")
    assert fingerprint["address"] == web1.address and fingerprint["transport"] == Transport.SSH
    assert not PROCESSES.is_local(entry)


def test_a_process_of_the_portals_own_machine_is_a_local_target(world):
    alpha = world[0]
    portal = factories.host(alpha, "portal", transport=Transport.LOCAL)
    store.store_scan(portal.pk, snapshot([proc(300, "celery")]))
    (entry,) = targets.resolve({"kind": "process", "hosts": ["portal"], "pids": [300]}, alpha)
    assert PROCESSES.is_local(entry)


def test_processes_of_disabled_hosts_are_no_targets(world):
    alpha, _, web1, _, _ = world
    web1.enabled = False
    web1.save()
    assert targets.resolve({"kind": "process", "hosts": ["web-1"], "pids": [100]}, alpha) == []
