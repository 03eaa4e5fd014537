"""Swarm service metric rules: the average CPU % or memory % of a service's running tasks against a
threshold. The minute's sampling job averages the task containers it sampled per service when it
ends (containers/operations.ServiceRollup) into the service's series; the evaluation reads them as
it reads a container's."""
import time

import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.containers import operations
from ops_portal.containers.models import Service, service_metric_key
from ops_portal.core.context import Actor
from ops_portal.monitoring import metrics, services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert, Sample
from schedulers.container.containers import StatsSample
from tests import factories
from tests.containers.helpers import container, engine, service
from tests.helpers import person
from tests.monitoring.helpers import open_alerts

pytestmark = pytest.mark.django_db
NOW = int(time.time()) // 60 * 60
CPU, MEM = "svc_cpu_percent", "svc_mem_percent"


def service_rule(environment, **fields):
    fields = {"name": "busy", "kind": "service_metric", "metric": CPU, "threshold": 80, **fields}
    return services.create_rule(Actor.system(), environment=environment, **fields)


def figures(cpu, mem=10.0):
    return StatsSample(cpu_percent=cpu, online_cpus=2, memory_usage=1, memory_limit=10, memory_percent=mem, net_rx=0,
                       net_tx=0, block_read=0, block_write=0, pids=1, read_at="", running=True)


def store(row, values, *, end=NOW, every=60, metric=CPU):
    start = end - every * (len(values) - 1)
    metrics.store([(row.engine.host_id, start + i * every, [(metric, service_metric_key(row.pk), float(v))])
                   for i, v in enumerate(values)])


class Writer:
    def call(self, function):
        function()


class Runner:
    def __init__(self, job_environment, *engines):
        self.objects = {f"engine:{e.pk}": e for e in engines}
        self.resources, self.writer = {}, Writer()
        self.job = type("Job", (), {"environment_id": job_environment.pk})()


@pytest.fixture
def manager(env):
    return engine(env, host=factories.host(env, "manager-1"))


def test_the_sampling_job_averages_each_services_sampled_tasks_into_its_series(env, manager):
    worker = engine(env, name="worker-1", url="tcp://127.0.0.1:2376", host=factories.host(env, "worker-1"))
    web, api = service(manager, "web", replicas_running=3), service(manager, "api", replicas_running=1)
    for name, where, service_id in [("web.1", manager, web.service_id), ("web.2", worker, web.service_id),
                                    ("api.1", worker, api.service_id), ("plain", worker, "")]:
        container(where, name, state="running", service_id=service_id)
    runner = Runner(env, manager, worker)
    operations.prepare_engine_stats(runner)
    running = {item[0]: item for items in runner.resources["running_containers"].values() for item in items}
    assert running["web.2"][4] == web.service_id and running["plain"][4] == ""
    rollup = runner.resources["service_rollup"]
    order = list(runner.resources)
    assert order.index("service_rollup") < order.index("evaluate_after")  # averaged before it is evaluated
    rollup.add(web.service_id, figures(90, 20))  # tasks on two engines, one service
    rollup.add(web.service_id, figures(30, 40))
    rollup.add(api.service_id, figures(5))
    rollup.add("", figures(99))  # not a task
    rollup.add("no-such-service", figures(99))  # a service of another environment
    rollup.close()
    stored = {(s.series.mount, s.series.metric): (s.series.host_id, s.value)
              for s in Sample.objects.select_related("series").filter(series__metric__in=[CPU, MEM])}
    assert stored == {
        (service_metric_key(web.pk), CPU): (manager.host_id, 60.0), (service_metric_key(web.pk), MEM): (
            manager.host_id, 30.0),
        (service_metric_key(api.pk), CPU): (manager.host_id, 5.0), (service_metric_key(api.pk), MEM): (
            manager.host_id, 10.0)}


def test_a_service_listed_by_two_managers_is_averaged_once_on_the_first_ones_series(env, manager):
    second = engine(env, name="manager-2", url="tcp://127.0.0.1:2377", host=factories.host(env, "manager-2"))
    first = service(manager, "web", service_id="s" * 25)
    service(second, "web", service_id="s" * 25)
    runner = Runner(env, manager, second)
    operations.prepare_engine_stats(runner)
    assert runner.resources["service_rollup"].services == {"s" * 25: (first.pk, manager.host_id)}


@pytest.mark.parametrize("fields, field", [
    ({"metric": "ctr_cpu_percent"}, "metric"),
    ({"metric": "prog_mem_bytes"}, "metric"),
    ({"mount": "/"}, "mount"),
    ({"tag": "web"}, "tag"),
    ({"threshold": None}, "threshold"),
])
def test_fields_that_do_not_fit_a_service_metric_rule_are_refused_on_their_field(env, fields, field):
    with pytest.raises(ValidationError) as refused:
        service_rule(env, **fields)
    assert field in refused.value.message_dict


def test_the_api_takes_service_metric_rules_and_answers_400_on_a_host_group(api, env):
    api.force_authenticate(person(env, Role.ADMIN))
    factories.host_group(env, "web")
    base = {"name": "busy", "environment": env.name, "kind": "service_metric", "metric": MEM, "threshold": 90,
            "name_filter": "shop-*", "for_seconds": 120}
    created = api.post("/api/alert-rules/", base, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["kind"], created.json()["metric"]) == ("service_metric", MEM)
    refused = api.post("/api/alert-rules/", {**base, "name": "other", "group": "web"}, format="json")
    assert refused.status_code == 400 and "group" in refused.json()["error"]["fields"], refused.content


def test_a_service_over_its_threshold_fires_one_alert_about_it_and_resolves_when_scaled_to_zero(env, manager):
    rule = service_rule(env, for_seconds=60, name_filter="shop-*")
    hot, cool = service(manager, "shop-web", replicas_running=2), service(manager, "shop-db", replicas_running=1)
    other = service(manager, "billing", replicas_running=1)  # out of the name filter
    store(hot, [10, 90, 95])
    store(cool, [10, 12, 11])
    store(other, [99, 99, 99])
    assert evaluate(environment_id=env.pk, now=NOW) == {"fired": 1, "resolved": 0}
    [alert] = open_alerts(rule=rule)
    assert (alert.subject_kind, alert.subject_id, alert.subject_name, alert.host_id, alert.value) == (
        "service", hot.pk, "shop-web", manager.host_id, 95.0)
    assert alert.summary == ("shop-web (Swarm service on engine local): CPU % per task (of one CPU, average of its "
                             "tasks) is 95 (> 80 for 60s) — busy")
    Service.objects.filter(pk=hot.pk).update(replicas_running=0)  # scaled to zero: no more figures
    assert evaluate(environment_id=env.pk, now=NOW + 400) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get(pk=alert.pk).resolution == "the Swarm service stopped (no figures)"


def test_the_rule_list_names_the_services_a_rule_watches(client, env):
    service_rule(env, name_filter="shop-*")
    client.force_login(person(env, Role.VIEWER))
    assert "Swarm services named shop-*" in client.get("/monitoring/").content.decode()
