"""Program metric rules: the CPU or memory of each program's processes (its own and their
descendants, summed) against a threshold. Process scans write the samples (programs/metrics.py)
where such a rule exists; the evaluation reads them like container metrics, with a staleness of two
scan periods (scans come every 5 minutes, not every minute)."""
import time

import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.monitoring import services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert, Sample, Series
from ops_portal.processes import store
from ops_portal.programs import metrics as program_metrics
from tests import factories
from tests.helpers import person
from tests.monitoring.helpers import open_alerts
from tests.processes.helpers import proc, snapshot
from tests.programs.helpers import program

pytestmark = pytest.mark.django_db
NOW = int(time.time()) // 60 * 60
CPU, MEM = "prog_cpu_percent", "prog_mem_bytes"
MIB = 2**20


def program_rule(environment, **fields):
    fields = {"name": "hungry", "kind": "program_metric", "metric": CPU, "threshold": 80, **fields}
    return services.create_rule(Actor.system(), environment=environment, **fields)


def scan(host, procs, *, at, basis="delta"):
    shot = snapshot(procs, at=at)
    shot.cpu_basis = basis
    return store.store_scan(host.pk, shot)


def values(program_row, metric):
    return list(Sample.objects.filter(series__host_id=program_row.host_id, series__metric=metric,
                                      series__mount=program_metrics.metric_key(program_row.pk))
                .order_by("time").values_list("time", "value"))


@pytest.fixture
def host(env):
    return factories.host(env, "app-1", tags=["db"])


def test_a_scan_sums_each_running_programs_processes_and_their_descendants(env, host):
    program_rule(env)
    web = program(host, "web", state="running", pids=[100])
    worker = program(host, "queue:worker_00", state="running", pids=[200])  # a supervisord group's process
    nginx = program(host, "nginx", manager="systemd", state="running", pids=[300])
    api = program(host, "api", manager="pm2", state="running", pids=[400])
    unseen = program(host, "legacy", state="running", pids=[500])  # the scan found no owner: by its pids
    stopped = program(host, "idle", state="stopped", pids=[])
    scan(host, [
        proc(1, "init", ppid=0, cpu=50, rss=5 * MIB),
        proc(100, "gunicorn", owner=("supervisord", "web"), main=True, cpu=10, rss=100 * MIB),
        proc(101, "gunicorn", ppid=100, owner=("supervisord", "web"), cpu=30.5, rss=200 * MIB),
        proc(200, "worker", owner=("supervisord", "queue:worker_00"), main=True, cpu=5, rss=50 * MIB),
        proc(300, "nginx", owner=("systemd", "nginx.service"), main=True, cpu=1, rss=8 * MIB),
        proc(301, "nginx", ppid=300, owner=("systemd", "nginx.service"), cpu=2, rss=8 * MIB),
        proc(400, "node", owner=("pm2", "api"), main=True, cpu=20, rss=70 * MIB),
        proc(500, "legacy", cpu=7, rss=1 * MIB),
        proc(501, "legacy-child", ppid=500, cpu=3, rss=2 * MIB),
        proc(600, "unrelated", owner=("supervisord", "nobody-knows"), main=True, cpu=99, rss=999 * MIB),
    ], at=NOW)
    assert values(web, CPU) == [(NOW, 40.5)] and values(web, MEM) == [(NOW, 300 * MIB)]
    assert values(worker, CPU) == [(NOW, 5.0)]
    assert values(nginx, CPU) == [(NOW, 3.0)] and values(nginx, MEM) == [(NOW, 16 * MIB)]
    assert values(api, MEM) == [(NOW, 70 * MIB)]
    assert values(unseen, CPU) == [(NOW, 10.0)] and values(unseen, MEM) == [(NOW, 3 * MIB)]
    assert values(stopped, CPU) == []
    assert Series.objects.filter(host=host, metric__in=[CPU, MEM]).count() == 10  # 5 programs, 2 metrics


def test_a_scan_whose_cpu_figures_are_lifetime_averages_gives_memory_only(env, host):
    program_rule(env)
    web = program(host, "web", state="running", pids=[100])
    scan(host, [proc(100, "web", owner=("supervisord", "web"), main=True, cpu=90, rss=MIB)], at=NOW,
         basis="lifetime")
    assert values(web, CPU) == [] and values(web, MEM) == [(NOW, MIB)]


def test_nothing_is_written_where_no_program_metric_rule_watches(env, host):
    other = factories.environment("beta")
    program_rule(other)  # another environment's rule
    program_rule(env, name="off", enabled=False)
    web = program(host, "web", state="running", pids=[100])
    scan(host, [proc(100, "web", owner=("supervisord", "web"), main=True, cpu=90, rss=MIB)], at=NOW)
    assert values(web, CPU) == [] and not Series.objects.filter(metric__in=[CPU, MEM]).exists()


@pytest.mark.parametrize("fields, field", [
    ({"metric": "cpu_percent"}, "metric"),  # a host metric
    ({"metric": "ctr_cpu_percent"}, "metric"),  # a container metric
    ({"threshold": None}, "threshold"),
    ({"mount": "/var"}, "mount"),
])
def test_fields_that_do_not_fit_a_program_metric_rule_are_refused_on_their_field(env, fields, field):
    with pytest.raises(ValidationError) as refused:
        program_rule(env, **fields)
    assert field in refused.value.message_dict


def test_the_api_takes_program_metric_rules_scoped_by_name_group_and_tag(api, env):
    api.force_authenticate(person(env, Role.ADMIN))
    factories.host_group(env, "app")
    base = {"name": "fat", "environment": env.name, "kind": "program_metric", "metric": MEM,
            "threshold": 512 * MIB, "for_seconds": 600, "name_filter": "worker-*", "group": "app", "tag": "db"}
    created = api.post("/api/alert-rules/", base, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["kind"], body["metric"], body["name_filter"], body["group"], body["tag"]) == (
        "program_metric", MEM, "worker-*", "app", "db")
    for extra, field in [({"metric": "ctr_mem_bytes"}, "metric"), ({"mount": "/"}, "mount"),
                         ({"metric": ""}, "metric")]:
        response = api.post("/api/alert-rules/", {**base, "name": "other", **extra}, format="json")
        assert response.status_code == 400, (extra, response.content)
        assert field in response.json()["error"]["fields"], (extra, response.json())


def test_a_program_over_its_threshold_across_scans_fires_one_alert_about_it_and_resolves(env, host):
    rule = program_rule(env, name_filter="web*", for_seconds=300, clear_threshold=50)
    web = program(host, "web", state="running", pids=[100])
    program(host, "db", state="running", pids=[200])  # out of the name filter

    def busy(at, cpu):
        scan(host, [proc(100, "web", owner=("supervisord", "web"), main=True, cpu=cpu),
                    proc(200, "db", owner=("supervisord", "db"), main=True, cpu=99)], at=at)

    busy(NOW - 600, 10)
    busy(NOW - 300, 95)
    assert evaluate(environment_id=env.pk, now=NOW - 300) == {"fired": 0, "resolved": 0}  # over for 0 s
    busy(NOW, 97)
    # 290 s after the last scan: not stale for a program (two scan periods), over for 300 s
    assert evaluate(environment_id=env.pk, now=NOW + 290) == {"fired": 1, "resolved": 0}
    [alert] = open_alerts(rule=rule)
    assert (alert.subject_kind, alert.subject_id, alert.subject_name, alert.host_id, alert.metric, alert.value) == (
        "program", web.pk, "web", host.pk, CPU, 97.0)
    assert alert.summary == "web (program on app-1): CPU % (of one CPU, all its processes) is 97 (> 80 for 300s) — " \
                            "hungry"
    busy(NOW + 300, 60)  # under the threshold, over the clear threshold
    assert evaluate(environment_id=env.pk, now=NOW + 300) == {"fired": 0, "resolved": 0}
    busy(NOW + 600, 20)
    assert evaluate(environment_id=env.pk, now=NOW + 600) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get(pk=alert.pk).resolution == "the value is back past the clear threshold"


def test_a_stopped_program_resolves_once_its_figures_are_stale_a_running_one_keeps_its_alert(env, host):
    program_rule(env, metric=MEM, threshold=MIB, for_seconds=0)
    web = program(host, "web", state="running", pids=[100])
    api = program(host, "api", state="running", pids=[200])
    scan(host, [proc(100, "web", owner=("supervisord", "web"), main=True, rss=2 * MIB),
                proc(200, "api", owner=("supervisord", "api"), main=True, rss=2 * MIB)], at=NOW)
    assert evaluate(environment_id=env.pk, now=NOW)["fired"] == 2
    web.state = "stopped"
    web.save(update_fields=["state"])
    later = NOW + program_metrics.stale_after() + 1
    assert evaluate(environment_id=env.pk, now=later) == {"fired": 0, "resolved": 1}
    assert [a.subject_id for a in open_alerts()] == [api.pk]
    assert Alert.objects.get(subject_id=web.pk).resolution == "the program stopped (no figures)"


def test_the_scan_job_asks_for_an_evaluation_only_where_program_metric_rules_watch(env, host, monkeypatch):
    from ops_portal.processes import job_actions

    class Runner:
        def __init__(self):
            self.resources, self.objects, self.writer = {}, {}, object()
            self.job = type("Job", (), {"environment_id": env.pk})()

    monkeypatch.setattr(job_actions, "prepare_ssh", lambda runner: None)
    quiet = Runner()
    job_actions.prepare_scan(quiet)
    assert "evaluate_after" not in quiet.resources
    program_rule(env)
    watched = Runner()
    job_actions.prepare_scan(watched)
    assert watched.resources["evaluate_after"].environment_id == env.pk


def test_the_rules_list_says_whom_each_rule_watches(client, env, host):
    group = factories.host_group(env, "app")
    program_rule(env, name="p1", name_filter="worker-*", group=group, tag="db")
    program_rule(env, name="p2")
    services.create_rule(Actor.system(), environment=env, name="c1", kind="container_metric",
                         metric="ctr_cpu_percent", threshold=90, name_filter="shop-*")
    services.create_rule(Actor.system(), environment=env, name="h1", metric="cpu_percent", threshold=90, tag="db")
    services.create_rule(Actor.system(), environment=env, name="s1", kind="program_not_running", tag="db")
    client.force_login(person(env, Role.VIEWER))
    page = client.get("/monitoring/").content.decode()
    for expected in ("programs named worker-* on group app, tag db", "all programs", "containers named shop-*",
                     "<td>tag db</td>", "programs on tag db"):
        assert expected in page, expected
