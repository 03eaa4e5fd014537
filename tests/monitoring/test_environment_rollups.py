"""Per-environment rollups: the rollup task writes, beside each 5-minute and hourly rollup, one row
per environment, metric and bucket, equal to grouping that bucket's host rollups (container
series left out); it rewrites the buckets it recomputes, fills in what was rolled up before it
existed, and drops rows past the retention of their step."""
import pytest
from django.db.models import Avg, Max

from ops_portal.monitoring import metrics
from ops_portal.monitoring.choices import FIVE_MINUTES, HOURLY
from ops_portal.monitoring.models import EnvironmentRollup, Rollup, RollupState, Series
from tests import factories
from tests.monitoring.helpers import T0, series_values

pytestmark = pytest.mark.django_db


def _grouped(step):
    """{(environment, metric, time): (avg, max)} by grouping the host rollups of `step` (what the
    dashboard's charts read before per-environment rows existed)."""
    rows = (Rollup.objects.filter(step=step).exclude(series__mount__startswith="ctr:")
            .values("series__host__environment_id", "series__metric", "time").annotate(a=Avg("avg"), m=Max("max"))
            .values_list("series__host__environment_id", "series__metric", "time", "a", "m").order_by())
    return {(env, metric, at): (round(a, 4), round(m, 4)) for env, metric, at, a, m in rows}


def _per_environment(step):
    return {(r.environment_id, r.metric, r.time): (round(r.avg, 4), round(r.max, 4))
            for r in EnvironmentRollup.objects.filter(step=step)}


@pytest.fixture
def hosts(envs):
    alpha, beta = envs
    made = []
    for env, base in ((alpha, 10), (beta, 50)):
        for i in range(3):
            host = factories.host(env, f"{env.name}-{i}")
            series_values(host, "cpu_percent", [base + i, base + 2 * i, base + 7], start=T0 + 30 * i)
            series_values(host, "disk_percent", [base + i], start=T0 + 600, mount="/")
            series_values(host, "disk_percent", [base + 40], start=T0 + 600, mount="/var")
            series_values(host, "cpu_percent", [99], start=T0, mount="ctr:1:abc")  # a container's: left out
            made.append(host)
    return made


def test_each_bucket_of_an_environment_equals_grouping_its_hosts_rollups(hosts):
    metrics.rollup(now=T0 + 2 * 3600 + metrics.ROLLUP_GRACE_SECONDS)
    for step in (FIVE_MINUTES, HOURLY):
        grouped = _grouped(step)
        assert grouped and _per_environment(step) == grouped
    alpha_cpu = EnvironmentRollup.objects.get(environment=hosts[0].environment, metric="cpu_percent",
                                              step=FIVE_MINUTES, time=T0)
    assert alpha_cpu.series == 3 and alpha_cpu.max == 17.0  # three hosts; the container's 99 is not there
    assert EnvironmentRollup.objects.get(environment=hosts[0].environment, metric="disk_percent",
                                         step=FIVE_MINUTES, time=T0 + 600).series == 6  # two mounts a host


def test_a_recomputed_bucket_is_rewritten_and_a_host_that_moved_leaves_no_stale_row(hosts, envs):
    alpha, beta = envs
    metrics.rollup(now=T0 + 900 + metrics.ROLLUP_GRACE_SECONDS)
    before = EnvironmentRollup.objects.get(environment=alpha, metric="cpu_percent", step=FIVE_MINUTES, time=T0)
    series_values(hosts[0], "cpu_percent", [100], start=T0 + 240)  # stored late by a slow job
    moved = hosts[1]
    moved.environment = beta
    moved.save(update_fields=["environment"])
    metrics.rollup(now=T0 + 1200 + metrics.ROLLUP_GRACE_SECONDS)
    after = EnvironmentRollup.objects.get(environment=alpha, metric="cpu_percent", step=FIVE_MINUTES, time=T0)
    assert (before.series, after.series) == (3, 2) and after.max == 100.0
    assert _per_environment(FIVE_MINUTES) == _grouped(FIVE_MINUTES)


def test_the_first_rollup_after_the_upgrade_fills_in_every_stored_bucket(hosts):
    metrics.rollup(now=T0 + 2 * 3600 + metrics.ROLLUP_GRACE_SECONDS)
    EnvironmentRollup.objects.all().delete()  # as a portal that rolled up before this table existed
    RollupState.objects.filter(step=FIVE_MINUTES).update(done_until=T0 + 2 * 3600 - 300)
    metrics.rollup(now=T0 + 2 * 3600 + metrics.ROLLUP_GRACE_SECONDS)
    assert EnvironmentRollup.objects.filter(step=FIVE_MINUTES, time=T0).exists()  # older than any window
    assert _per_environment(FIVE_MINUTES) == _grouped(FIVE_MINUTES)
    assert _per_environment(HOURLY) == _grouped(HOURLY)


def test_retention_drops_environment_rows_with_their_step(env):
    series = Series.objects.create(host=factories.host(env), metric="cpu_percent")
    now = T0 + 400 * 86400
    for step, age_days in ((FIVE_MINUTES, 31), (FIVE_MINUTES, 29), (HOURLY, 366), (HOURLY, 364)):
        at = now - age_days * 86400
        at -= at % step
        Rollup.objects.create(series=series, step=step, time=at, avg=1, max=1, count=1)
        EnvironmentRollup.objects.create(environment=env, metric="cpu_percent", step=step, time=at, total=1,
                                         series=1, max=1)
    removed = metrics.retention(now=now)
    assert removed["environments"] == 2
    kept = sorted(EnvironmentRollup.objects.values_list("step", "time"))
    assert kept == sorted(Rollup.objects.values_list("step", "time"))
