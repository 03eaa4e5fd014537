"""Monitoring against the real fleet: metrics jobs over SSH through a live worker, a disk that fills
up and is cleaned, a host that goes away and comes back."""
import time

import pytest
from django.core.management import call_command

from ops_portal.inventory.models import Host
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import Job
from ops_portal.monitoring.models import Alert, Sample
from ops_portal.monitoring.tasks import collect_metrics
from ops_portal.notifications.models import Delivery
from tests import factories
from tests.helpers import wait_until
from tests.jobs.helpers import wait_job
from tests.monitoring.helpers import rule
from tests.notifications.helpers import channel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]
HOSTS = 3


@pytest.fixture
def staging(fleet):
    """The first fleet hosts as inventory hosts of "staging", registered like an operator would."""
    env = factories.environment("staging")
    call_command("register_fleet", str(fleet.inventory_path), environment="staging", tag="fleet")
    names = [h.name for h in fleet.hosts[:HOSTS]]
    Host.objects.exclude(name__in=names).update(enabled=False)
    return env, list(Host.objects.filter(name__in=names).order_by("name"))


def collect_round(expected=JobState.SUCCEEDED):
    launched = collect_metrics()
    assert len(launched) == 1, launched
    return wait_job(Job.objects.get(pk=launched[0]), expected, timeout=120)


def latest(host, metric, mount=""):
    return (Sample.objects.filter(series__host=host, series__metric=metric, series__mount=mount)
            .order_by("-time").values_list("value", flat=True).first())


def test_metrics_jobs_sample_fleet_hosts_including_the_data_tmpfs(fleet, staging, live_worker):
    env, hosts = staging
    job = collect_round()
    assert job.targets.filter(state="ok").count() == HOSTS
    for host in hosts:
        assert latest(host, "reachable") == 1.0
        assert 0 <= latest(host, "cpu_percent") <= 100 and 0 < latest(host, "mem_percent") < 100
        assert latest(host, "load1") >= 0
        mounts = set(Sample.objects.filter(series__host=host, series__metric="disk_percent")
                     .values_list("series__mount", flat=True))
        # The probe keeps a tmpfs outside the runtime directories: /mnt/data is reported.
        assert {"/", "/mnt/data"} <= mounts, mounts
        assert latest(host, "disk_percent", "/mnt/data") < 50


def test_a_filling_disk_fires_an_alert_that_resolves_after_cleanup(fleet, staging, live_worker):
    env, hosts = staging
    target = hosts[0]
    hooks = channel(env, "oncall", events=["alert.firing", "alert.resolved"], url="http://127.0.0.1:9/hook")
    watched = rule(env, name="data-full", metric="disk_percent", mount="/mnt/data", threshold=80,
                   clear_threshold=60, severity="critical")
    try:
        fleet.exec(target.name, "dd if=/dev/zero of=/mnt/data/fill bs=1M count=58").check()
        collect_round()
        assert latest(target, "disk_percent", "/mnt/data") > 85
        alert = wait_until(lambda: Alert.objects.filter(rule=watched, state="firing").first(), timeout=30,
                           what="the disk alert")
        assert (alert.host, alert.mount, alert.severity) == (target, "/mnt/data", "critical")
        assert Alert.objects.filter(rule=watched).count() == 1  # only the filled host
        assert Delivery.objects.filter(channel=hooks, event="alert.firing").count() == 1
    finally:
        fleet.exec(target.name, "rm -f /mnt/data/fill")
    # Samples are per second (a later one in the same second is dropped as a repeat): on a fast machine
    # the next round could sample within the filled sample's second, so start it in a later one.
    filled_at = Sample.objects.filter(series__host=target, series__metric="disk_percent",
                                      series__mount="/mnt/data").order_by("-time").values_list("time", flat=True)[0]
    wait_until(lambda: time.time() >= filled_at + 1, timeout=5, what="the next second", interval=0.05)
    collect_round()
    resolved = wait_until(lambda: Alert.objects.filter(pk=alert.pk, state="resolved").first(), timeout=30,
                          what="the disk alert to resolve")
    assert resolved.resolution == "the value is back past the clear threshold" and resolved.value < 60
    assert Delivery.objects.filter(channel=hooks, event="alert.resolved").count() == 1


def test_a_host_that_goes_away_is_recorded_unreachable_and_alerts(fleet, staging, live_worker):
    env, hosts = staging
    gone = hosts[-1]
    rule(env, name="down", metric="reachable", comparator="<", threshold=1, severity="critical")
    fleet.stop_host(gone.name)
    try:
        job = collect_round(JobState.FAILED)
        assert job.targets.get(name=gone.name).state == "failed"
        assert job.targets.filter(state="ok").count() == HOSTS - 1
        assert latest(gone, "reachable") == 0.0
        alert = wait_until(lambda: Alert.objects.filter(host=gone, state="firing").first(), timeout=30,
                           what="the reachability alert")
    finally:
        fleet.start_host(gone.name)
    collect_round()
    assert latest(gone, "reachable") == 1.0
    wait_until(lambda: Alert.objects.filter(pk=alert.pk, state="resolved").exists(), timeout=30,
               what="the reachability alert to resolve")
