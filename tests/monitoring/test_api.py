"""The monitoring API: metric queries (with their 400s), alerts and acknowledgement, rules."""
import time
from datetime import UTC, datetime

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core.context import Actor
from ops_portal.monitoring import metrics, services
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.monitoring.helpers import series_values

pytestmark = pytest.mark.django_db
URL = "/api/metrics/"


def iso(seconds):
    return datetime.fromtimestamp(seconds, UTC).isoformat()


@pytest.fixture
def viewer(make_user, env):
    return make_user(Role.VIEWER, env)


def test_metrics_of_the_last_hours_come_raw_with_one_series_per_mount(api, host, viewer):
    now = int(time.time())
    series_values(host, "disk_percent", [10, 11, 12], start=now - 180, mount="/")
    series_values(host, "disk_percent", [50, 51, 52], start=now - 180, mount="/mnt/data")
    api.force_authenticate(viewer)
    response = api.get(URL, {"host": host.pk, "metric": "disk_percent"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["host"], body["metric"], body["step"]) == (host.pk, "disk_percent", "raw")
    assert [(s["mount"], s["values"]) for s in body["series"]] == [("/", [10.0, 11.0, 12.0]),
                                                                  ("/mnt/data", [50.0, 51.0, 52.0])]
    assert body["series"][0]["times"] == [now - 180, now - 120, now - 60]


def test_longer_ranges_come_as_rollups_with_maxima(api, host, viewer):
    now = int(time.time())
    start = now - now % 300 - 3600
    series_values(host, "cpu_percent", [10, 30, 20, 40, 50], start=start)
    metrics.rollup(now=now)
    api.force_authenticate(viewer)
    body = api.get(URL, {"host": host.pk, "metric": "cpu_percent", "since": iso(now - 7 * 86400),
                         "until": iso(now)}).json()
    assert body["step"] == "5m"
    assert body["series"] == [{"mount": "", "times": [start], "values": [30.0], "max": [50.0]}]
    hourly = api.get(URL, {"host": host.pk, "metric": "cpu_percent", "step": "1h"}).json()
    assert hourly["step"] == "1h" and hourly["series"][0]["max"] == [50.0]


@pytest.mark.parametrize("params, field", [
    ({"metric": "cpu_percent"}, "host"),
    ({"host": "x", "metric": "cpu_percent"}, "host"),
    ({"host": 1, "metric": "temperature"}, "metric"),
    ({"host": 1}, "metric"),
    ({"host": 1, "metric": "cpu_percent", "step": "10s"}, "step"),
    ({"host": 1, "metric": "cpu_percent", "since": "yesterday"}, "since"),
    ({"host": 1, "metric": "cpu_percent", "since": iso(2_000_000), "until": iso(1_000_000)}, "since"),
    ({"host": 1, "metric": "cpu_percent", "since": iso(4_102_444_800)}, "since"),
    ({"host": 1, "metric": "cpu_percent", "since": iso(1_000_000), "until": iso(100_000_000)}, "since"),
    ({"host": 1, "metric": "cpu_percent", "since": iso(1_000_000), "until": iso(30_000_000), "step": "raw"}, "step"),
    ({"host": 1, "metric": "cpu_percent", "colour": "red"}, "colour"),
])
def test_bad_metric_queries_are_400_with_the_field_named(api, viewer, params, field):
    api.force_authenticate(viewer)
    response = api.get(URL, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error


def test_metrics_of_a_host_outside_the_users_environments_are_404(api, host, make_user):
    api.force_authenticate(make_user(Role.ADMIN, factories.environment("beta")))
    assert api.get(URL, {"host": host.pk, "metric": "cpu_percent"}).status_code == 404
    api.force_authenticate(None)
    assert api.get(URL, {"host": host.pk, "metric": "cpu_percent"}).status_code == 401


def test_acknowledging_through_the_api_needs_operate(api, env, host, viewer, make_user):
    alert, _ = services.fire(Actor.system(), source="rule", key="k", environment=env, host=host,
                             severity="critical", summary="disk full")
    url = f"/api/alerts/{alert.pk}/acknowledge/"
    api.force_authenticate(viewer)
    assert api.post(url, {"note": "mine"}, format="json").status_code == 403
    operator = make_user(Role.OPERATOR, env)
    api.force_authenticate(operator)
    assert api.post(url, {}, format="json").status_code == 400
    response = api.post(url, {"note": "cleaning /var/log"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["acknowledged_by_name"]) == ("acknowledged",
                                                                                  operator.username)
    assert api.post(url, {"note": "again"}, format="json").status_code == 409
    event = AuditEvent.objects.filter(action="alert.acknowledge").get()
    assert (event.actor_id, event.source, event.after["note"]) == (operator.pk, "api", "cleaning /var/log")
    api.force_authenticate(make_user(Role.OPERATOR, factories.environment("beta")))
    assert api.post(url, {"note": "x"}, format="json").status_code == 404


def test_alerts_filter_by_state_severity_host_and_environment(api, env, host, viewer):
    other = factories.host(env, "web-2")
    services.fire(Actor.system(), source="rule", key="a", environment=env, host=host, severity="critical",
                  summary="a")
    b, _ = services.fire(Actor.system(), source="rule", key="b", environment=env, host=other, severity="info",
                         summary="b")
    services.resolve(Actor.system(), b, resolution="done")
    api.force_authenticate(viewer)

    def ids(**params):
        response = api.get("/api/alerts/", params)
        assert response.status_code == 200, response.content
        return [row["summary"] for row in response.json()["results"]]

    assert sorted(ids()) == ["a", "b"]
    assert ids(state="firing") == ["a"]
    assert ids(state="resolved", severity="info") == ["b"]
    assert ids(host=other.pk) == ["b"]
    assert ids(environment="beta") == []
    assert api.get("/api/alerts/", {"state": "sleeping"}).status_code == 400


def test_rules_are_validated_in_their_environment(api, env, make_user):
    admin = make_user(Role.ADMIN, env)
    factories.host_group(env, "web")
    factories.host_group(factories.environment("beta"), "db")
    api.force_authenticate(admin)
    base = {"name": "hot", "environment": "alpha", "metric": "cpu_percent", "threshold": 90}
    ok = api.post("/api/alert-rules/", {**base, "group": "web", "tag": "blue"}, format="json")
    assert ok.status_code == 201, ok.content
    assert (ok.json()["group"], ok.json()["clear_threshold"]) == ("web", None)
    for extra, field in [({"group": "db"}, "group"), ({"clear_threshold": 95}, "clear_threshold"),
                         ({"mount": "/var"}, "mount"), ({"runbook_template_id": 424242}, "runbook_template_id"),
                         ({"comparator": ">="}, "comparator"), ({"tag": "two words"}, "tag")]:
        response = api.post("/api/alert-rules/", {**base, "name": "other", **extra}, format="json")
        assert response.status_code == 400, (extra, response.content)
        assert field in response.json()["error"]["fields"], (extra, response.json())
    assert api.post("/api/alert-rules/", base, format="json").status_code == 400  # the name is taken
    assert Alert.objects.count() == 0


def test_alert_lists_and_the_monitoring_page_cost_the_same_queries_for_3_or_30_alerts(api, client, env, viewer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    watched = services.create_rule(Actor.system(), name="hot", environment=env, metric="cpu_percent", threshold=90)

    def make(count):
        for _ in range(count):
            host = factories.host(env)
            services.fire(Actor.system(), source="rule", key=f"{watched.pk}:{host.pk}:", environment=env,
                          host=host, rule=watched, severity="warning", summary="hot")

    def cost():
        api.force_authenticate(viewer)
        client.force_login(viewer)
        with CaptureQueriesContext(connection) as listing:
            assert api.get("/api/alerts/", {"limit": 100}).status_code == 200
        with CaptureQueriesContext(connection) as page:
            assert client.get("/monitoring/").status_code == 200
        return len(listing.captured_queries), len(page.captured_queries)

    make(3)
    cost()  # warm: the user's scopes are computed once and kept on the user
    few = cost()
    make(27)
    assert cost() == few
