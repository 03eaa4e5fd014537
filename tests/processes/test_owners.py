"""The hook into the programs app: without it (this branch) every process is signaled directly,
and the reason says why; with it, a program's own process is handed to its manager."""
import sys
import types

import pytest

from ops_portal.processes import owners, store
from ops_portal.processes.models import Process
from tests import factories
from tests.processes.helpers import proc, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    host = factories.host(factories.environment("alpha"), "web-1")
    store.store_scan(host.pk, snapshot([
        proc(10, "python3", owner=("supervisord", "web:web_00"), main=True),
        proc(11, "worker", ppid=10, owner=("supervisord", "web:web_00")),
        proc(12, "bash"), proc(13, "app", owner=("container", "3f2a9c1d0e4b"))]))
    return host


def process(host, pid):
    return Process.objects.select_related("host").get(host=host, pid=pid)


def test_without_the_programs_app_a_managed_process_is_signaled_directly_and_says_why(host):
    assert not owners.programs_installed()
    owner = owners.owning_program(process(host, 10))
    assert not owner and owner.reason == "it belongs to supervisord program web:web_00, but the programs app is " \
                                         "not installed"


def test_unmanaged_processes_and_children_of_programs_have_no_program(host):
    assert owners.owning_program(process(host, 12)).reason == ""
    assert owners.owning_program(process(host, 13)).reason == ""
    child = owners.owning_program(process(host, 11))
    assert not child and "child of supervisord program web:web_00's own process" in child.reason


@pytest.fixture
def programs_app(monkeypatch):
    """A stand-in for ops_portal.programs: installed, with program_for_process answering for "web"."""
    asked = []
    program = types.SimpleNamespace(pk=7, manager="supervisord", name="web",
                                    get_absolute_url=lambda: "/programs/7/")

    def program_for_process(host, pid, owner_kind, owner_name):
        asked.append((host.name, pid, owner_kind, owner_name))
        return program if owner_name.startswith("web:") else None

    module = types.ModuleType(owners.PROGRAMS_SERVICES)
    module.program_for_process = program_for_process
    monkeypatch.setitem(sys.modules, owners.PROGRAMS_SERVICES, module)
    monkeypatch.setattr(owners, "programs_installed", lambda: True)
    return program, asked


def test_with_the_programs_app_a_programs_own_process_goes_to_its_manager(host, programs_app):
    program, asked = programs_app
    owner = owners.owning_program(process(host, 10))
    assert owner and owner.program is program and owners.program_url(owner.program) == "/programs/7/"
    assert asked == [("web-1", 10, "supervisord", "web:web_00")]


def test_a_process_the_programs_app_does_not_know_is_signaled_directly(host, programs_app):
    store.store_scan(host.pk, snapshot([proc(20, "sleeper", owner=("supervisord", "sleeper"), main=True)],
                                       at=2_000_000_000))
    owner = owners.owning_program(process(host, 20))
    assert not owner and "which the portal does not know as a program" in owner.reason
