"""Container metric rules: a metric of each container of the environment (named by the rule's name
filter) against a threshold, read from the series the container sampling jobs fill; their
validation (model and API), evaluation (for N seconds, hysteresis, scope, stopped and removed
containers) and the periodic task that launches the sampling jobs."""
import time

import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.containers import tasks as container_tasks
from ops_portal.containers.models import Container
from ops_portal.core.context import Actor
from ops_portal.jobs.models import Job
from ops_portal.monitoring import metrics, services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.containers.helpers import container, engine
from tests.monitoring.helpers import open_alerts

pytestmark = pytest.mark.django_db
NOW = int(time.time()) // 60 * 60
CPU = "ctr_cpu_percent"


def container_rule(environment, **fields):
    fields = {"name": "hot", "kind": "container_metric", "metric": CPU, "threshold": 80, "for_seconds": 120,
              **fields}
    return services.create_rule(Actor.system(), environment=environment, **fields)


def samples(row, values, *, end=NOW, every=60, metric=CPU):
    """One sample per value, `every` seconds apart, the last at `end`, into the container's series."""
    host_id = row.host_id or row.engine.host_id
    start = end - every * (len(values) - 1)
    metrics.store([(host_id, start + i * every, [(metric, row.metric_key, float(v))]) for i, v in enumerate(values)])


@pytest.fixture
def host(env):
    return factories.host(env, "node-1")


@pytest.fixture
def local(env, host):
    return engine(env, host=host)


@pytest.mark.parametrize("fields, field", [
    ({"metric": "cpu_percent"}, "metric"),  # a host metric
    ({"metric": ""}, "metric"),
    ({"threshold": None}, "threshold"),
    ({"mount": "/var"}, "mount"),
    ({"tag": "web"}, "tag"),
])
def test_fields_that_do_not_fit_a_container_metric_rule_are_refused_on_their_field(env, fields, field):
    with pytest.raises(ValidationError) as refused:
        container_rule(env, **fields)
    assert field in refused.value.message_dict


def test_a_host_metric_rule_takes_neither_a_container_metric_nor_a_name_filter(env):
    for fields, field in [({"metric": CPU}, "metric"), ({"name_filter": "web-*"}, "name_filter")]:
        with pytest.raises(ValidationError) as refused:
            services.create_rule(Actor.system(), environment=env, name="h", threshold=90,
                                 **{"metric": "cpu_percent", **fields})
        assert field in refused.value.message_dict


def test_the_api_takes_container_metric_rules_and_answers_400_on_the_field_that_does_not_fit(api, env, make_user):
    api.force_authenticate(make_user(Role.ADMIN, env))
    factories.host_group(env, "web")
    base = {"name": "hot", "environment": env.name, "kind": "container_metric", "metric": "ctr_mem_percent",
            "threshold": 90, "clear_threshold": 80, "for_seconds": 300, "name_filter": "shop-*"}
    created = api.post("/api/alert-rules/", base, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["kind"], body["metric"], body["threshold"], body["name_filter"]) == (
        "container_metric", "ctr_mem_percent", 90.0, "shop-*")
    for extra, field in [({"metric": "load1"}, "metric"), ({"metric": "ctr_net_rx"}, "metric"),
                         ({"group": "web"}, "group"), ({"threshold": None}, "threshold"),
                         ({"clear_threshold": 95}, "clear_threshold")]:
        response = api.post("/api/alert-rules/", {**base, "name": "other", **extra}, format="json")
        assert response.status_code == 400, (extra, response.content)
        assert field in response.json()["error"]["fields"], (extra, response.json())


def test_a_container_over_its_threshold_long_enough_fires_one_alert_about_it(env, local):
    hot, cool = container(local, "shop-hot"), container(local, "shop-cool")
    other = container(local, "db-hot")  # out of the name filter
    rule = container_rule(env, name_filter="shop-*")
    samples(hot, [10, 95, 96], end=NOW - 60)
    samples(cool, [10, 12, 11, 10])
    samples(other, [99, 99, 99, 99])
    assert evaluate(environment_id=env.pk, now=NOW - 60) == {"fired": 0, "resolved": 0}  # over for 60 s only
    samples(hot, [97])  # over for 120 s at NOW
    assert evaluate(environment_id=env.pk, now=NOW) == {"fired": 1, "resolved": 0}
    [alert] = open_alerts(rule=rule)
    assert (alert.subject_kind, alert.subject_id, alert.subject_name, alert.host_id, alert.metric, alert.mount,
            alert.value) == ("container", hot.pk, "shop-hot", local.host_id, CPU, "", 97.0)
    assert alert.summary == ("shop-hot (container on engine local): CPU % (of one CPU) is 97 (> 80 for 120s) — hot")
    assert evaluate(environment_id=env.pk, now=NOW) == {"fired": 0, "resolved": 0}  # idempotent


def test_it_resolves_past_the_clear_threshold_only(env, local):
    hot = container(local, "shop-hot")
    rule = container_rule(env, clear_threshold=50, for_seconds=0)
    samples(hot, [95], end=NOW - 120)
    assert evaluate(environment_id=env.pk, now=NOW - 120)["fired"] == 1
    samples(hot, [70], end=NOW - 60)  # under the threshold, over the clear threshold: still open
    assert evaluate(environment_id=env.pk, now=NOW - 60) == {"fired": 0, "resolved": 0}
    samples(hot, [30], end=NOW)
    assert evaluate(environment_id=env.pk, now=NOW) == {"fired": 0, "resolved": 1}
    alert = Alert.objects.get(rule=rule)
    assert (alert.state, alert.resolution, alert.value) == ("resolved", "the value is back past the clear threshold",
                                                            30.0)


def test_a_stopped_container_resolves_once_its_figures_are_stale_a_running_one_keeps_its_alert(env, local):
    stopped, silent = container(local, "shop-a"), container(local, "shop-b")
    rule = container_rule(env, for_seconds=0)
    samples(stopped, [95], end=NOW)
    samples(silent, [95], end=NOW)
    assert evaluate(environment_id=env.pk, now=NOW)["fired"] == 2
    Container.objects.filter(pk=stopped.pk).update(state="exited")
    later = NOW + 600  # past MONITORING_STALE_SECONDS: neither reports any more
    assert evaluate(environment_id=env.pk, now=later) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get(rule=rule, subject_id=stopped.pk).resolution == "the container stopped (no figures)"
    # Still running but no fresh figures (sampling broken, engine unreachable): the alert stays.
    assert [a.subject_id for a in open_alerts(rule=rule)] == [silent.pk]


def test_a_removed_container_or_one_renamed_out_of_the_filter_resolves(env, local):
    gone, renamed = container(local, "shop-a"), container(local, "shop-b")
    rule = container_rule(env, for_seconds=0, name_filter="shop-*")
    samples(gone, [95])
    samples(renamed, [95])
    assert evaluate(environment_id=env.pk, now=NOW)["fired"] == 2
    gone.delete()
    Container.objects.filter(pk=renamed.pk).update(name="old-b")
    assert evaluate(environment_id=env.pk, now=NOW) == {"fired": 0, "resolved": 2}
    assert set(Alert.objects.filter(rule=rule).values_list("resolution", flat=True)) == {
        "the container is gone or out of the rule's scope"}


def test_a_rule_changed_from_host_metric_to_container_metric_resolves_its_host_alerts(env, local, host):
    rule = services.create_rule(Actor.system(), environment=env, name="cpu", metric="cpu_percent", threshold=90)
    metrics.store([(host.pk, NOW, [("cpu_percent", "", 99.0)])])
    assert evaluate(environment_id=env.pk, now=NOW)["fired"] == 1
    services.update_rule(Actor.system(), rule, kind="container_metric", metric=CPU)
    assert evaluate(environment_id=env.pk, now=NOW) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get(rule=rule).resolution == "the rule now watches something else"


def test_the_periodic_task_launches_one_sampling_job_per_environment_and_skips_a_busy_one(env, local):
    container(local, "shop-a")
    container(engine(env, name="idle", url="tcp://127.0.0.1:2376"), "stopped", state="exited")  # none running
    other = factories.environment("other")
    container(engine(other, name="far", url="tcp://127.0.0.1:2377", host=factories.host(other, "node-2")), "db")
    launched = container_tasks.collect_stats(parallel=4, max_containers=50)
    jobs = Job.objects.filter(pk__in=launched).order_by("environment__name")
    assert [(j.environment.name, j.action, [t.name for t in j.targets.all()]) for j in jobs] == [
        (env.name, "engine.container_stats", ["local"]), ("other", "engine.container_stats", ["far"])]
    assert jobs[0].params == {"parallel": 4, "max_containers": 50} and jobs[0].created_by is None
    assert container_tasks.collect_stats() == []  # both still queued: nothing piles up


def _counters(net_rx=0, net_tx=0, block_read=0, block_write=0):
    from schedulers.container.containers import StatsSample

    return StatsSample(cpu_percent=1.0, online_cpus=1, memory_usage=1, memory_limit=2, memory_percent=50.0,
                       net_rx=net_rx, net_tx=net_tx, block_read=block_read, block_write=block_write, pids=1,
                       read_at="", running=True)


def test_io_rates_are_taken_against_the_counters_previous_sample_and_not_across_a_restart(env, local):
    from ops_portal.containers import operations

    busy, fresh, old = container(local, "busy"), container(local, "fresh"), container(local, "old")
    host_id = local.host_id
    metrics.store([(host_id, NOW - 60, operations.keyed_rows(busy.metric_key, _counters(1000, 500, 0, 4096))),
                   (host_id, NOW - 120, operations.keyed_rows(busy.metric_key, _counters(10, 10, 0, 0))),
                   (host_id, NOW - operations.RATE_WINDOW - 60,
                    operations.keyed_rows(old.metric_key, _counters(1, 1, 1, 1)))])  # too old to take a rate from
    pairs = {(host_id, row.metric_key) for row in (busy, fresh, old)}
    counters = operations.last_counters(pairs, NOW)
    assert counters[(host_id, busy.metric_key)]["ctr_net_rx"] == (NOW - 60, 1000.0)  # the latest one
    assert (host_id, fresh.metric_key) not in counters and (host_id, old.metric_key) not in counters
    rates = operations.rate_rows(busy.metric_key, _counters(7000, 500, 300, 1024), NOW,
                                 counters[(host_id, busy.metric_key)])
    # 6000 B in 60 s; nothing sent; 300 B read; block writes went back (a restart): no rate
    assert rates == [("ctr_rx_rate", busy.metric_key, 100.0), ("ctr_tx_rate", busy.metric_key, 0.0),
                     ("ctr_blkr_rate", busy.metric_key, 5.0)]
    assert operations.rate_rows(fresh.metric_key, _counters(5), NOW, {}) == []
    assert operations.rate_rows(busy.metric_key, _counters(7000), NOW - 60, counters[(host_id, busy.metric_key)]) \
        == []  # the same second: no interval to divide by


def test_a_container_rule_takes_an_io_rate_but_not_a_counter(env, local):
    rule = container_rule(env, metric="ctr_rx_rate", threshold=10_000_000)
    assert rule.metric_label == "Network received (bytes/s)"
    with pytest.raises(ValidationError) as refused:
        container_rule(env, name="counter", metric="ctr_net_rx", threshold=1)
    assert "metric" in refused.value.message_dict
