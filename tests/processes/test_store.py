"""Scans stored: a host's rows replaced in bulk in a few queries, ids kept for the processes that
lived through, what changed kept on the scan, old scans pruned, crossed scans ignored."""
import pytest

from ops_portal.processes import store
from ops_portal.processes.choices import SCANS_KEPT
from ops_portal.processes.models import Process, ProcessScan
from schedulers.process import inventory
from tests import factories
from tests.processes.helpers import proc, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def host():
    return factories.host(factories.environment("alpha"), "web-1")


def test_a_first_scan_stores_every_process_with_its_facts_and_no_changes(host):
    scan = store.store_scan(host.pk, snapshot([
        proc(1, "init", ppid=0), proc(200, "nginx", ports=[("0.0.0.0", 80), ("::", 443)],
                                      owner=("systemd", "nginx.service"), main=True)]))
    assert scan.first and scan.process_count == 2 and (scan.new_count, scan.gone_count) == (0, 0)
    nginx = Process.objects.get(host=host, pid=200)
    assert nginx.ports == [["0.0.0.0", 80], ["::", 443]] and nginx.port_list == " 80 443 "
    assert (nginx.owner_kind, nginx.owner_name, nginx.main) == ("systemd", "nginx.service", True)
    assert nginx.command == "/usr/bin/nginx --serve" and scan.bytes == 1234


def test_a_process_keeps_its_id_across_scans_and_a_reused_pid_gets_a_new_one(host):
    first = snapshot([proc(10, "a"), proc(11, "b"), proc(12, "c")], at=1_800_000_000)
    store.store_scan(host.pk, first)
    ids = dict(Process.objects.filter(host=host).values_list("pid", "pk"))
    second = snapshot([proc(10, "a"), proc(11, "b", started=1_700_000_500.0), proc(13, "d")], at=1_800_000_060)
    scan = store.store_scan(host.pk, second, inventory.diff(first, second))
    now = dict(Process.objects.filter(host=host).values_list("pid", "pk"))
    assert now[10] == ids[10]  # the same process
    assert now[11] != ids[11]  # pid 11 is another process now: a job planned on the old one never hits it
    assert 12 not in now and 13 in now
    assert (scan.new_count, scan.gone_count, scan.restarted_count) == (1, 1, 1)
    assert scan.changes == {"new": [[13, "d"]], "gone": [[12, "c"]], "restarted": [[11, 11, "b"]]}


def test_thousands_of_processes_are_stored_in_a_few_queries(host, django_assert_max_num_queries):
    big = snapshot([proc(pid, f"p{pid}") for pid in range(2, 3002)], at=1_800_000_000)
    with django_assert_max_num_queries(11):  # and whether a program metric rule wants samples
        store.store_scan(host.pk, big)
    again = snapshot([proc(pid, f"p{pid}") for pid in range(2, 3002)], at=1_800_000_060)
    with django_assert_max_num_queries(10):  # a scan job knows that already
        store.store_scan(host.pk, again, inventory.diff(big, again), program_samples=False)
    assert Process.objects.filter(host=host).count() == 3000


def test_a_scan_older_than_the_stored_one_is_ignored(host):
    store.store_scan(host.pk, snapshot([proc(5, "new")], at=1_800_000_100))
    assert store.store_scan(host.pk, snapshot([proc(6, "old")], at=1_800_000_000)) is None
    assert list(Process.objects.filter(host=host).values_list("name", flat=True)) == ["new"]


def test_a_failed_scan_is_recorded_and_leaves_the_processes_alone(host):
    store.store_scan(host.pk, snapshot([proc(5, "kept")]))
    failed = store.store_failure(host.pk, "host unreachable: connection refused")
    assert failed.error.startswith("host unreachable") and failed.process_count == 0
    assert Process.objects.filter(host=host, name="kept").exists()


def test_old_scans_are_pruned_per_host(host):
    other = factories.host(host.environment, "web-2")
    store.store_scan(other.pk, snapshot([proc(5)], at=1_700_000_000))
    for i in range(SCANS_KEPT + 5):
        store.store_scan(host.pk, snapshot([proc(5)], at=1_800_000_000 + i))
    assert ProcessScan.objects.filter(host=host).count() == SCANS_KEPT
    assert ProcessScan.objects.filter(host=other).count() == 1


def test_previous_snapshots_rebuild_the_stored_scan_for_cpu_deltas_and_changes(host):
    first = snapshot([proc(7, "busy", owner=("supervisord", "web"), main=True, ports=[("127.0.0.1", 8080)])],
                     at=1_800_000_000)
    store.store_scan(host.pk, first)
    previous = store.previous_snapshots([host.pk])[host.pk]
    assert previous.collected_at == 1_800_000_000 and previous.boot_time == first.boot_time
    (busy,) = previous.processes
    assert busy.owner == ("supervisord", "web") and busy.main and busy.ports == [("127.0.0.1", 8080)]
    later = snapshot([proc(7, "busy")], at=1_800_000_010)
    later.processes[0].cpu_time = 6.0  # 5 CPU seconds in 10 s
    assert inventory.cpu_since(previous, later).processes[0].cpu_percent == 50.0
