"""The portal's own machine as a host, through a live worker: its processes scanned from /proc
(API → job → worker → database → API), what changed between two scans, pause and resume of a
process, and a pid whose start time changed refused with nothing sent."""
import subprocess
import time

import psutil
import pytest

from ops_portal.inventory.choices import Transport
from ops_portal.processes.choices import CHANGES_KEPT
from ops_portal.processes.models import Process, ProcessScan
from tests import factories
from tests.processes.conftest import act, found, output, scan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def portal(db):
    return factories.host(factories.environment("alpha"), "portal", transport=Transport.LOCAL)


@pytest.fixture
def marker():
    """A process of this test with a command line no other process has."""
    word = f"opsportal-processes-{time.monotonic_ns()}"
    proc = subprocess.Popen(["sh", "-c", f"exec sleep 600 # {word}", word])
    time.sleep(0.1)
    yield proc, word
    proc.kill()
    proc.wait()


def test_a_scan_of_the_portals_machine_lists_this_tests_process_and_the_change_since(portal, marker, admin_api,
                                                                                    live_worker):
    proc, word = marker
    job = scan(admin_api, portal)
    assert "processes (proc" in output(job)
    (row,) = found(admin_api, portal, pid=proc.pid)
    assert row["name"] == "sleep" and row["user"] == psutil.Process(proc.pid).username()
    assert abs(row["start_time"] - psutil.Process(proc.pid).create_time()) < 0.05
    assert row["state"] in ("S", "R") and row["rss"] > 0 and row["threads"] == 1
    first = ProcessScan.objects.get(host=portal)
    assert first.first and first.source == "proc" and first.process_count == Process.objects.filter(
        host=portal).count() > 10
    proc.kill()
    proc.wait()
    other = subprocess.Popen(["sleep", "601"])
    try:
        scan(admin_api, portal)
        latest = ProcessScan.objects.filter(host=portal).latest("time")
        assert latest.gone_count >= 1 and latest.new_count >= 1
        # The scan keeps the first CHANGES_KEPT of each; a busy machine may have had more.
        if latest.gone_count <= CHANGES_KEPT:
            assert [proc.pid, "sleep"] in latest.changes["gone"]
        if latest.new_count <= CHANGES_KEPT:
            assert [other.pid, "sleep"] in latest.changes["new"]
        assert latest.cpu_basis == "delta"  # CPU used between the two scans
        assert not found(admin_api, portal, pid=proc.pid) and found(admin_api, portal, pid=other.pid)
    finally:
        other.kill()
        other.wait()


def test_pause_gives_state_t_and_resume_clears_it(portal, marker, admin_api, live_worker):
    proc, _ = marker
    scan(admin_api, portal)
    process = Process.objects.get(host=portal, pid=proc.pid)
    paused = act(admin_api, process, "pause")
    assert psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
    assert Process.objects.get(pk=process.pk).state == "T"  # shown at once, before the next scan
    assert f"sent SIGSTOP to pid {proc.pid}" in output(paused)
    assert "not through a manager" not in output(paused)  # nobody owns it: nothing to explain
    act(admin_api, process, "resume")
    assert psutil.Process(proc.pid).status() == psutil.STATUS_SLEEPING
    assert Process.objects.get(pk=process.pk).state in ("S", "R")  # running for a moment after SIGCONT


def test_a_pid_whose_start_time_changed_is_refused_and_left_alone(portal, marker, admin_api, live_worker):
    proc, _ = marker
    scan(admin_api, portal)
    process = Process.objects.get(host=portal, pid=proc.pid)
    # As if the process the scan saw had ended and its pid were reused by this one.
    Process.objects.filter(pk=process.pk).update(start_time=process.start_time - 3600)
    job = act(admin_api, process, "kill", state="failed")
    (target,) = job.targets.all()
    assert f"pid {proc.pid} is now another process" in target.error and "nothing was sent" in target.error
    assert proc.poll() is None and psutil.Process(proc.pid).status() == psutil.STATUS_SLEEPING
