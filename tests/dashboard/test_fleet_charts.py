"""The dashboard's fleet and per-environment charts: aggregates per time bucket (metrics from the
per-environment rollups, equal to grouping the hosts' rollups), only the environments the user may
view, a fixed number of queries however many rows there are."""
import datetime
import re

import pytest
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.db.models import Avg, Max
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.dashboard import charts
from ops_portal.jobs.models import Job
from ops_portal.monitoring import metrics
from ops_portal.monitoring.choices import FIVE_MINUTES, HOURLY
from ops_portal.monitoring.models import Alert, Rollup
from tests import factories
from tests.helpers import person
from tests.monitoring.helpers import series_values

pytestmark = pytest.mark.django_db

NOW = int(timezone.now().timestamp()) // 300 * 300


def _job(env, user, state, *, ago, ran=None):
    created = timezone.now() - datetime.timedelta(seconds=ago)
    started = created if ran is not None else None
    return Job.objects.create(name="j", environment=env, action="host.command", state=state, created=created,
                              created_by=user, created_by_name=user.username, started=started,
                              finished=created + datetime.timedelta(seconds=ran) if ran is not None else None)


@pytest.fixture
def fleet(envs):
    alpha, beta = envs
    for env, cpu in ((alpha, (10, 30)), (beta, (90, 90))):
        for i, value in enumerate(cpu):
            host = factories.host(env, f"{env.name}-{i}")
            series_values(host, "cpu_percent", [value], start=NOW - 600)
            series_values(host, "disk_percent", [50 + i], start=NOW - 600, mount="/")
            metrics.store([(host.pk, NOW - 600, [("cpu_percent", "ctr:1:abc", 100.0)])])  # a container's
    metrics.rollup(now=NOW + metrics.ROLLUP_GRACE_SECONDS)  # the charts end at the rollup watermark
    return alpha, beta


def _grouped(env_ids, step, since):
    """What the charts gave before per-environment rollups: the hosts' rollups grouped per bucket."""
    rows = (Rollup.objects.filter(step=step, time__gte=since, series__host__environment_id__in=env_ids,
                                  series__metric__in=charts.METRICS)
            .exclude(series__mount__startswith="ctr:").values("series__metric", "time")
            .annotate(a=Avg("avg"), m=Max("max")).values_list("series__metric", "time", "a", "m").order_by())
    out = {metric: {} for metric in charts.METRICS}
    for metric, at, avg, top in rows:
        out[metric][at] = (round(avg, 2), round(top, 2))
    return {metric: {"times": sorted(out[metric]), "avg": [out[metric][t][0] for t in sorted(out[metric])],
                     "max": [out[metric][t][1] for t in sorted(out[metric])]} for metric in charts.METRICS}


def test_the_metric_charts_equal_grouping_the_hosts_rollups(envs):
    alpha, beta = envs
    start = NOW - 3 * 86400 - NOW % 3600
    for env in envs:
        for i in range(3):
            host = factories.host(env, f"{env.name}-{i}")
            for metric, mount in (("cpu_percent", ""), ("mem_percent", ""), ("disk_percent", "/"),
                                  ("disk_percent", "/var"), ("cpu_percent", "ctr:1:x")):
                values = [(i * 7 + k * 13 + len(mount)) % 100 for k in range(24)]
                series_values(host, metric, values, start=start + 60 * i, every=3 * 3600, mount=mount)
    metrics.rollup(now=NOW + metrics.ROLLUP_GRACE_SECONDS)
    admin, viewer = person(None, Role.ADMIN), person(beta, Role.VIEWER)
    for user, env_ids in ((admin, [alpha.pk, beta.pk]), (viewer, [beta.pk])):
        for range_key, step in (("24h", FIVE_MINUTES), ("7d", HOURLY)):
            data = charts.fleet(user, range_key=range_key, now=NOW)
            expected = _grouped(env_ids, step, NOW - charts.RANGES[range_key])
            assert expected["cpu_percent"]["times"]  # something to compare
            for metric in charts.METRICS:
                got = data["metrics"][metric]
                assert {k: got[k] for k in ("times", "avg", "max")} == expected[metric], (user, range_key, metric)


def test_cpu_is_averaged_over_the_viewers_hosts_with_the_busiest_beside(fleet):
    alpha, _ = fleet
    data = charts.fleet(person(alpha, Role.VIEWER), now=NOW)
    cpu = data["metrics"]["cpu_percent"]
    assert cpu["times"] == [NOW - 600] and cpu["avg"] == [20.0] and cpu["max"] == [30.0]
    assert data["metrics"]["disk_percent"]["max"] == [51.0]


def test_one_environment_of_several_can_be_chosen(fleet):
    alpha, beta = fleet
    admin = person(None, Role.ADMIN)
    assert charts.fleet(admin, now=NOW)["metrics"]["cpu_percent"]["avg"] == [55.0]
    assert charts.fleet(admin, environment="beta", now=NOW)["metrics"]["cpu_percent"]["avg"] == [90.0]


def test_people_s_jobs_by_state_durations_and_alerts_per_hour(fleet):
    alpha, beta = fleet
    viewer = person(alpha, Role.VIEWER)
    _job(alpha, viewer, "succeeded", ago=60, ran=10)
    _job(alpha, viewer, "succeeded", ago=61, ran=30)
    _job(alpha, viewer, "canceled", ago=62)
    _job(beta, viewer, "failed", ago=60, ran=5)  # another environment: not the viewer's
    Job.objects.create(name="metrics", environment=alpha, action="host.metrics", state="succeeded")  # the portal's
    Alert.objects.create(source="rule", key="k", environment=alpha, severity="critical", summary="s",
                         fired_at=timezone.now())
    data = charts.fleet(viewer, now=int(timezone.now().timestamp()))
    jobs = data["jobs"]
    assert jobs["states"] == ["succeeded", "canceled"]
    assert sum(jobs["succeeded"]) == 2 and sum(jobs["canceled"]) == 1
    assert max(data["durations"]["max"]) == 30.0 and 20.0 in data["durations"]["avg"]
    assert sum(data["alerts"]["critical"]) == 1 and sum(data["alerts"]["warning"]) == 0


def test_the_dashboard_fetches_its_chart_data_and_its_queries_do_not_grow(client, fleet, monkeypatch):
    monkeypatch.setattr(charts, "cache", DummyCache("dummy", {}))  # every request computes
    alpha, _ = fleet
    viewer = person(alpha, Role.VIEWER)
    client.force_login(viewer)
    _job(alpha, viewer, "succeeded", ago=90, ran=1)  # recent jobs: with none, their counts cost no query
    page = client.get("/", {"range": "6h"}).content.decode()
    url = re.search(r'id="fleet-charts" data-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert url == "/dashboard/fleet.json?range=6h"
    client.get(url)  # the session and the permission cache
    with CaptureQueriesContext(connection) as few:
        data = client.get(url).json()
    assert data["until"] - data["since"] == 6 * 3600 and data["metrics"]["cpu_percent"]["avg"]
    for i in range(30):
        host = factories.host(alpha, f"more-{i}")
        series_values(host, "cpu_percent", [1, 2, 3], start=NOW - 1800, every=300)
        _job(alpha, viewer, "failed", ago=100 + i, ran=3)
    metrics.rollup(now=NOW + metrics.ROLLUP_GRACE_SECONDS)
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    # The session, the user and who may view what (5), then the watermark, the metric rows, jobs by
    # state, durations and alerts (5): pinned, however many hosts, samples and jobs there are.
    assert len(many) == len(few) == 10, [q["sql"][:80] for q in many.captured_queries]


def test_an_unknown_range_or_environment_falls_back_to_the_default(client, fleet):
    alpha, _ = fleet
    client.force_login(person(alpha, Role.VIEWER))
    data = client.get("/dashboard/fleet.json", {"range": "10y", "environment": "beta"}).json()
    assert data["until"] - data["since"] == 86400 and data["metrics"]["cpu_percent"]["avg"] == [20.0]
    assert client.get("/", {"range": "10y", "environment": "beta"}).status_code == 200


def test_the_charts_are_computed_once_a_minute_per_set_of_environments(fleet, monkeypatch):
    alpha, beta = fleet
    monkeypatch.setattr(charts, "cache", LocMemCache("fleet-test", {}))
    one, other = person(alpha, Role.VIEWER), person(alpha, Role.VIEWER)
    first = charts.fleet(one)
    with CaptureQueriesContext(connection) as again:
        assert charts.fleet(other) == first  # the same environments: the same answer, from the cache
    read = " ".join(q["sql"] for q in again.captured_queries)  # only who may view what
    assert "monitoring_" not in read and "jobs_job" not in read and len(again) <= 2
    assert charts.fleet(person(beta, Role.VIEWER))["metrics"]["cpu_percent"]["avg"] == [90.0]  # not alpha's
