"""The metrics store: compact series, bulk writes, rollups (5-minute and hourly), retention and reads."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.monitoring import metrics
from ops_portal.monitoring.choices import FIVE_MINUTES, HOURLY, RAW
from ops_portal.monitoring.models import Rollup, RollupState, Sample, Series
from tests import factories
from tests.monitoring.helpers import T0, series_values

pytestmark = pytest.mark.django_db


def test_probe_output_becomes_rows_with_reachability_and_one_series_per_mount():
    rows = metrics.probe_rows({"load1": 0.5, "load5": 0.4, "cpu_percent": 12.5, "mem_percent": None,
                               "disks": {"/": 40.1, "/mnt/data": 90.6, "relative": 5, "/bad": "x"}})
    assert rows == [("reachable", "", 1.0), ("cpu_percent", "", 12.5), ("load1", "", 0.5),
                    ("disk_percent", "/", 40.1), ("disk_percent", "/mnt/data", 90.6)]
    assert metrics.unreachable_rows() == [("reachable", "", 0.0)]


def test_storing_many_hosts_creates_each_series_once_and_writes_samples_in_bulk(env):
    hosts = [factories.host(env) for _ in range(30)]
    entries = [(h.pk, T0, metrics.probe_rows({"cpu_percent": 1, "mem_percent": 2, "load1": 3,
                                              "disks": {"/": 4, "/var": 5}})) for h in hosts]
    cache = {}
    with CaptureQueriesContext(connection) as first:
        assert metrics.store(entries, series_cache=cache) == 30 * 6
    assert Series.objects.count() == 180 and len(cache) == 180
    # The next minute, with the cache a job keeps: only the sample insert (plus the savepoint).
    later = [(host_id, T0 + 60, rows) for host_id, _, rows in entries]
    with CaptureQueriesContext(connection) as second:
        assert metrics.store(later, series_cache=cache) == 180
    inserts = [q["sql"] for q in second.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1 and 'INTO "monitoring_sample"' in inserts[0]
    assert len(second.captured_queries) < len(first.captured_queries)
    assert Sample.objects.count() == 360
    # The same sample twice (a retried write) is kept once.
    assert metrics.store(later[:1], series_cache=cache) == 6 and Sample.objects.count() == 360


@pytest.mark.django_db(transaction=True)
def test_samples_of_a_host_deleted_meanwhile_are_skipped(env):
    """The writer thread stores in its own transaction: the foreign key check at commit fails, and
    the store is retried without the vanished host."""
    kept, gone = factories.host(env), factories.host(env)
    gone_id, cache = gone.pk, {}
    metrics.store([(gone_id, T0, metrics.unreachable_rows())], series_cache=cache)
    gone.delete()  # its series and samples go with it; the job's cache still names its series
    stored = metrics.store([(kept.pk, T0 + 60, metrics.unreachable_rows()),
                            (gone_id, T0 + 60, metrics.unreachable_rows())], series_cache=cache)
    assert stored == 1
    assert list(Series.objects.values_list("host_id", flat=True)) == [kept.pk]


def test_five_minute_rollups_keep_average_and_maximum_and_hourly_ones_weigh_by_count(env):
    host = factories.host(env)
    # 0..11 over the first hour's first 12 minutes, one a minute; then one sample of 100 at minute 30.
    series_values(host, "cpu_percent", range(12), start=T0)
    series_values(host, "cpu_percent", [100], start=T0 + 1800)
    done = metrics.rollup(now=T0 + 2 * 3600 + metrics.ROLLUP_GRACE_SECONDS)
    assert done == {"5m": T0 + 7200, "1h": T0 + 7200}
    five = list(Rollup.objects.filter(step=FIVE_MINUTES).order_by("time").values_list("time", "avg", "max", "count"))
    assert five == [(T0, 2.0, 4.0, 5), (T0 + 300, 7.0, 9.0, 5), (T0 + 600, 10.5, 11.0, 2), (T0 + 1800, 100.0, 100.0, 1)]
    hour = Rollup.objects.get(step=HOURLY)
    assert (hour.time, hour.max, hour.count) == (T0, 100.0, 13)
    assert hour.avg == pytest.approx((sum(range(12)) + 100) / 13, rel=1e-6)


def test_rollups_are_idempotent_and_pick_up_late_samples(env):
    host = factories.host(env)
    series_values(host, "mem_percent", [10, 20], start=T0)
    metrics.rollup(now=T0 + 600 + metrics.ROLLUP_GRACE_SECONDS)
    assert list(Rollup.objects.filter(step=FIVE_MINUTES).values_list("avg", "count")) == [(15.0, 2)]
    metrics.rollup(now=T0 + 600 + metrics.ROLLUP_GRACE_SECONDS)  # again: same rows
    assert Rollup.objects.count() == 1
    series_values(host, "mem_percent", [60], start=T0 + 240)  # stored late by a slow job
    metrics.rollup(now=T0 + 900 + metrics.ROLLUP_GRACE_SECONDS)
    assert list(Rollup.objects.filter(step=FIVE_MINUTES).values_list("avg", "max", "count")) == [(30.0, 60.0, 3)]
    assert RollupState.objects.get(step=FIVE_MINUTES).done_until == T0 + 900


def test_buckets_still_open_are_not_rolled_up(env):
    host = factories.host(env)
    series_values(host, "load1", [1, 2, 3], start=T0)
    metrics.rollup(now=T0 + 200)  # the first bucket ends at T0+300, plus grace
    assert not Rollup.objects.exists()
    metrics.rollup(now=T0 + 300 + metrics.ROLLUP_GRACE_SECONDS)
    assert Rollup.objects.filter(step=FIVE_MINUTES).count() == 1
    assert not Rollup.objects.filter(step=HOURLY).exists()


def test_retention_drops_each_resolution_after_its_own_period_in_single_statements(env):
    host = factories.host(env)
    now = T0 + 400 * 86400
    series_values(host, "cpu_percent", [1], start=now - 49 * 3600)
    series_values(host, "cpu_percent", [2], start=now - 47 * 3600)
    series = Series.objects.get()
    for step, age_days in ((FIVE_MINUTES, 31), (FIVE_MINUTES, 29), (HOURLY, 366), (HOURLY, 364)):
        at = now - age_days * 86400
        Rollup.objects.create(series=series, step=step, time=at - at % step, avg=1, max=1, count=1)
    with CaptureQueriesContext(connection) as queries:
        removed = metrics.retention(now=now)
    assert removed == {"raw": 1, "5m": 1, "1h": 1, "environments": 0}
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["DELETE"] * 4
    assert list(Sample.objects.values_list("value", flat=True)) == [2.0]
    assert Rollup.objects.count() == 2


def test_reads_raw_samples_or_rollups_with_a_raw_tail_up_to_the_last_sample(env):
    host = factories.host(env)
    series_values(host, "disk_percent", [10, 20, 30, 40, 50, 60, 70], start=T0, mount="/")
    series_values(host, "disk_percent", [5] * 7, start=T0, mount="/var")
    raw = metrics.read(host, "disk_percent", T0, T0 + 3600, RAW)
    assert [s["mount"] for s in raw] == ["/", "/var"]
    assert raw[0]["times"] == [T0 + 60 * i for i in range(7)] and raw[0]["values"][-1] == 70.0
    assert "max" not in raw[0]
    metrics.rollup(now=T0 + 300 + metrics.ROLLUP_GRACE_SECONDS)  # only the first bucket is rolled up
    rolled = metrics.read(host, "disk_percent", T0, T0 + 3600, FIVE_MINUTES)
    assert rolled[0] == {"mount": "/", "times": [T0, T0 + 300], "values": [30.0, 65.0], "max": [50.0, 70.0]}
    assert metrics.read(host, "cpu_percent", T0, T0 + 3600, RAW) == []


def test_the_resolution_is_the_finest_one_kept_that_draws_readably():
    now = T0
    assert metrics.choose_step(now - 6 * 3600, now, now) == RAW
    assert metrics.choose_step(now - 24 * 3600, now, now) == RAW
    assert metrics.choose_step(now - 7 * 86400, now, now) == FIVE_MINUTES  # raw is gone after 48 h
    assert metrics.choose_step(now - 30 * 86400, now, now) == HOURLY  # too many 5-minute points
    assert metrics.choose_step(now - 60 * 86400, now - 59 * 86400, now) == HOURLY  # 5-minute data is gone
