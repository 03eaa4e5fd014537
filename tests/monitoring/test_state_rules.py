"""State rules: containers not running, Swarm services short of tasks, programs not running; their
evaluation (for N seconds, resolution, scope, idempotence) and their validation (model and API)."""
import datetime
import time

import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core.context import Actor
from ops_portal.monitoring import services
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert, PendingState
from tests import factories
from tests.containers.helpers import container, engine, service
from tests.monitoring.helpers import open_alerts, rule, series_values
from tests.programs.helpers import program

pytestmark = pytest.mark.django_db
NOW = int(time.time())


def at(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def state_rule(environment, kind, **fields):
    fields.setdefault("name", f"rule-{kind}")
    return services.create_rule(Actor.system(), environment=environment, kind=kind, **fields)


@pytest.fixture
def host(env):
    return factories.host(env, "node-1", tags=["web"])


@pytest.fixture
def local(env, host):
    return engine(env, host=host)


def test_a_stopped_container_alerts_after_for_seconds_from_its_exit_and_resolves_when_running(env, local, host):
    rule = state_rule(env, "container_not_running", for_seconds=60, severity="critical")
    box = container(local, "web-a", state="exited", exit_code=137, finished_at=at(NOW - 30), host=host)  # as synced
    container(local, "web-b")  # running: nothing to say
    assert evaluate(now=NOW) == {"fired": 0, "resolved": 0}
    assert evaluate(now=NOW + 30) == {"fired": 1, "resolved": 0}
    alert = Alert.objects.get()
    assert (alert.state, alert.rule, alert.severity, alert.subject_kind, alert.subject_id, alert.subject_name,
            alert.host, alert.metric, alert.threshold) == ("firing", rule, "critical", "container", box.pk, "web-a",
                                                           host, "", None)
    assert alert.summary == ("web-a (container on engine local): exited (exit code 137) for 60s — "
                             "rule-container_not_running")
    assert AuditEvent.objects.filter(action="alert.fire", object_id=str(alert.pk)).count() == 1
    assert evaluate(now=NOW + 31) == {"fired": 0, "resolved": 0}  # safe to run twice: one alert per subject
    box.state, box.started_at = "running", at(NOW + 40)
    box.save()
    assert evaluate(now=NOW + 45) == {"fired": 0, "resolved": 1}
    alert.refresh_from_db()
    assert (alert.state, alert.resolution) == ("resolved", "the container is running again")
    assert AuditEvent.objects.filter(action="alert.resolve", object_id=str(alert.pk)).count() == 1
    assert evaluate(now=NOW + 46) == {"fired": 0, "resolved": 0}


def test_unhealthy_and_restarting_containers_count_from_first_sight_and_task_containers_are_left_out(env, local):
    state_rule(env, "container_not_running", for_seconds=60)
    sick = container(local, "api", health="unhealthy")
    looping = container(local, "worker", state="restarting")
    container(local, "svc.1.abc", state="exited", task_id="t1", finished_at=at(NOW - 3600))  # an old Swarm task
    assert evaluate(now=NOW) == {"fired": 0, "resolved": 0}
    assert set(PendingState.objects.values_list("subject_id", flat=True)) == {sick.pk, looping.pk}
    assert evaluate(now=NOW + 59)["fired"] == 0
    assert evaluate(now=NOW + 60)["fired"] == 2
    assert {a.summary.split(":")[1].split(" for")[0].strip() for a in open_alerts()} == {
        "running but unhealthy", "restarting"}


def test_a_recovery_before_for_seconds_restarts_the_count(env, local):
    state_rule(env, "container_not_running", for_seconds=60)
    sick = container(local, "api", health="unhealthy")
    assert evaluate(now=NOW)["fired"] == 0
    sick.health = "healthy"
    sick.save()
    assert evaluate(now=NOW + 30)["fired"] == 0
    assert not PendingState.objects.exists()
    sick.health = "unhealthy"
    sick.save()
    assert evaluate(now=NOW + 70)["fired"] == 0  # unhealthy again only since NOW+70
    assert evaluate(now=NOW + 130)["fired"] == 1


def test_a_service_short_of_tasks_alerts_after_for_seconds_and_resolves_with_all_its_tasks(env, local, host):
    state_rule(env, "service_short", for_seconds=60)
    web = service(local, "shop_web", replicas_desired=3, replicas_running=1)
    service(local, "shop_db", replicas_desired=1, replicas_running=1)
    service(local, "migrate", mode="replicated-job", replicas_desired=1, replicas_running=0)  # a finished job
    assert evaluate(now=NOW)["fired"] == 0
    assert evaluate(now=NOW + 60) == {"fired": 1, "resolved": 0}
    alert = Alert.objects.get()
    assert (alert.subject_kind, alert.subject_id, alert.subject_name, alert.host) == ("service", web.pk,
                                                                                     "shop_web", host)
    assert "1 of 3 tasks running" in alert.summary
    web.replicas_running = 3
    web.save()
    assert evaluate(now=NOW + 90) == {"fired": 0, "resolved": 1}
    alert.refresh_from_db()
    assert alert.resolution == "the Swarm service runs all its tasks again"
    assert not PendingState.objects.exists()


def test_a_program_not_running_alerts_within_its_rule_scope_only(env, host):
    state_rule(env, "program_not_running", for_seconds=0, tag="web", name_filter="web*")
    other = factories.host(env, "db-1")
    stopped = program(host, "web", state="stopped", stopped_at=at(NOW - 5))
    program(host, "webhooks", state="running")
    program(host, "cron", state="fatal", exit_code=1)  # the name filter leaves it out
    program(other, "web", state="exited")  # its host lacks the tag
    program(host, "web-unknown", state="unknown")  # a refresh that could not tell
    assert evaluate(now=NOW) == {"fired": 1, "resolved": 0}
    alert = Alert.objects.get()
    assert (alert.subject_kind, alert.subject_id, alert.subject_name, alert.host) == ("program", stopped.pk, "web",
                                                                                     host)
    assert alert.summary.startswith("web (program on node-1): stopped — ")
    host.enabled = False  # out of scope: resolved, whatever the program's state
    host.save()
    assert evaluate(now=NOW + 30) == {"fired": 0, "resolved": 1}
    alert.refresh_from_db()
    assert alert.resolution == "the program is gone or out of the rule's scope"


def test_a_subject_that_is_gone_resolves_and_other_environments_are_not_watched(env, local):
    state_rule(env, "container_not_running")
    box = container(local, "web-a", state="exited", finished_at=at(NOW - 5))
    container(engine(factories.environment("beta"), name="beta", url="unix:///beta.sock"), "web-a", state="exited")
    assert evaluate(now=NOW) == {"fired": 1, "resolved": 0}
    box.delete()
    assert evaluate(now=NOW + 1) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get().resolution == "the container is gone or out of the rule's scope"


def test_disabling_a_state_rule_resolves_its_alerts_and_forgets_what_it_saw(env, local):
    rule = state_rule(env, "container_not_running", for_seconds=60)
    container(local, "a", state="exited", finished_at=at(NOW - 120))
    container(local, "b", health="unhealthy")
    assert evaluate(now=NOW)["fired"] == 1
    assert PendingState.objects.count() == 1
    services.update_rule(Actor.system(), rule, enabled=False)
    assert not open_alerts() and not PendingState.objects.exists()


def test_changing_a_rule_from_metric_to_state_resolves_its_host_alerts(env, local, host):
    metric_rule = rule(env, threshold=90)
    last = series_values(host, "cpu_percent", [95], start=NOW - 10)
    assert evaluate(now=last)["fired"] == 1
    services.update_rule(Actor.system(), metric_rule, kind="program_not_running", metric="", threshold=None)
    assert evaluate(now=last + 1) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get().resolution == "the rule now watches something else"


def test_changing_a_rule_from_state_to_metric_resolves_its_subjects_alerts(env, local, host):
    watched = state_rule(env, "container_not_running")
    container(local, "web-a", state="exited", exit_code=1, finished_at=at(NOW - 30), host=host)
    assert evaluate(now=NOW) == {"fired": 1, "resolved": 0}
    services.update_rule(Actor.system(), watched, kind="metric", metric="cpu_percent", threshold=90)
    assert evaluate(now=NOW + 1) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get().resolution == "the rule now watches something else"


@pytest.mark.parametrize(("kind", "fields", "field"), [
    ("container_not_running", {"metric": "cpu_percent"}, "metric"),
    ("container_not_running", {"threshold": 90}, "threshold"),
    ("service_short", {"clear_threshold": 5}, "clear_threshold"),
    ("program_not_running", {"mount": "/var"}, "mount"),
    ("container_not_running", {"tag": "web"}, "tag"),
    ("metric", {"metric": "cpu_percent", "threshold": 90, "name_filter": "web-*"}, "name_filter"),
    ("metric", {"metric": "cpu_percent"}, "threshold"),
    ("metric", {"threshold": 90}, "metric"),
])
def test_fields_that_do_not_fit_the_kind_are_refused_on_their_field(env, kind, fields, field):
    with pytest.raises(ValidationError) as refused:
        state_rule(env, kind, **fields)
    assert field in refused.value.message_dict


def test_the_api_takes_state_rules_and_answers_400_on_the_field_that_does_not_fit(api, env, make_user):
    api.force_authenticate(make_user(Role.ADMIN, env))
    factories.host_group(env, "web")
    base = {"name": "down", "environment": env.name, "kind": "container_not_running", "for_seconds": 120,
            "name_filter": "web-*", "severity": "critical"}
    created = api.post("/api/alert-rules/", base, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["kind"], body["metric"], body["threshold"], body["name_filter"]) == (
        "container_not_running", "", None, "web-*")
    listed = api.get("/api/alert-rules/", {"kind": "container_not_running"}).json()["results"]
    assert [row["name"] for row in listed] == ["down"]
    for extra, field in [({"threshold": 1}, "threshold"), ({"metric": "cpu_percent"}, "metric"),
                         ({"mount": "/var"}, "mount"), ({"group": "web"}, "group"), ({"kind": "sleeping"}, "kind"),
                         ({"name_filter": "a\nb"}, "name_filter"), ({"kind": "metric"}, "metric")]:
        response = api.post("/api/alert-rules/", {**base, "name": "other", **extra}, format="json")
        assert response.status_code == 400, (extra, response.content)
        assert field in response.json()["error"]["fields"], (extra, response.json())
    program_rule = api.post("/api/alert-rules/", {**base, "name": "programs", "kind": "program_not_running",
                                                  "group": "web", "tag": "blue"}, format="json")
    assert program_rule.status_code == 201, program_rule.content
    changed = api.patch(f"/api/alert-rules/{body['id']}/", {"kind": "metric"}, format="json")
    assert changed.status_code == 400 and "metric" in changed.json()["error"]["fields"]


def _without(row, *names):
    return {key: value for key, value in row.items() if key not in names}


def test_fire_many_and_resolve_many_write_what_fire_and_resolve_write(env, host, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    from django.db import transaction

    from ops_portal.audit.services import snapshot
    from ops_portal.core import streams
    from ops_portal.notifications import tasks
    from ops_portal.notifications.models import Delivery
    from tests.notifications.helpers import channel

    monkeypatch.setattr(tasks.deliver, "apply_async", lambda *a, **kw: None)
    monkeypatch.setattr(tasks.fan_out, "apply_async", lambda *a, **kw: None)
    sent = []
    monkeypatch.setattr(streams, "_send_each",
                        lambda items, **options: sent.extend(message["payload"] for _, message in items))
    channel(env, "hook", events=["alert.firing", "alert.resolved"])
    rule = state_rule(env, "container_not_running", severity="critical")
    actor = Actor.system()

    def item(n):
        return {"key": f"{rule.pk}:container:{n}", "host": host, "severity": "critical",
                "summary": f"box-{n}: exited", "subject": ("container", n, f"box-{n}")}

    with django_capture_on_commit_callbacks(execute=True):
        one, opened = services.fire(actor, source="rule", environment=env, rule=rule, **item(1))
        assert opened
        with transaction.atomic():
            many = services.fire_many(actor, source="rule", environment=env, rule=rule,
                                      items=[item(1), item(2), item(3), item(3)])  # 1 is open: 2 and 3
    assert [a.subject_id for a in many] == [2, 3] and Alert.objects.filter(state="firing").count() == 3
    varying = ("id", "key", "subject_id", "subject_name", "summary", "fired_at")
    rows = {a.subject_id: snapshot(a) for a in Alert.objects.all()}
    assert _without(rows[2], *varying) == _without(rows[1], *varying)
    assert rows[2]["summary"] == "box-2: exited" and rows[2]["key"] == f"{rule.pk}:container:2"
    audits = {int(e.object_id): e for e in AuditEvent.objects.filter(action="alert.fire")}
    assert set(audits) == {one.pk, *(a.pk for a in many)}
    assert (_without(audits[many[0].pk].after, *varying) == _without(audits[one.pk].after, *varying)
            and audits[many[0].pk].after["id"] == many[0].pk)
    assert ({(e.environment_id, e.actor_name, e.source, e.object_type) for e in audits.values()}
            == {(env.pk, audits[one.pk].actor_name, audits[one.pk].source, "monitoring.alert")})
    deliveries = {d.dedupe_key: d for d in Delivery.objects.filter(event="alert.firing")}
    assert set(deliveries) == {f"alert:{a.pk}:alert.firing" for a in (one, *many)}
    assert deliveries[f"alert:{many[0].pk}:alert.firing"].subject == "[critical] box-2: exited"
    assert (_without(deliveries[f"alert:{many[0].pk}:alert.firing"].payload, *varying)
            == _without(deliveries[f"alert:{one.pk}:alert.firing"].payload, *varying))
    assert [(p["id"], p["state"]) for p in sent] == [(one.pk, "firing"), (many[0].pk, "firing"), (many[1].pk, "firing")]

    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.resolve(actor, one, resolution="the container is running again")
        done = services.resolve_many(actor, {one.pk: "again", many[0].pk: "the container is running again",
                                             many[1].pk: "the container is gone"})
    assert [a.pk for a in done] == [many[0].pk, many[1].pk]  # the first was resolved already
    rows = {a.pk: snapshot(a) for a in Alert.objects.all()}
    assert _without(rows[many[0].pk], *varying, "resolved_at") == _without(rows[one.pk], *varying, "resolved_at")
    assert (rows[one.pk]["resolution"], rows[many[1].pk]["resolution"], rows[many[1].pk]["state"]) == (
        "the container is running again", "the container is gone", "resolved")
    resolves = {int(e.object_id): e for e in AuditEvent.objects.filter(action="alert.resolve")}
    assert set(resolves) == {one.pk, many[0].pk, many[1].pk}
    assert (resolves[many[0].pk].before["state"], resolves[many[0].pk].after["state"]) == ("firing", "resolved")
    assert (Delivery.objects.get(dedupe_key=f"alert:{many[1].pk}:alert.resolved").subject
            == "Resolved: box-3: exited")
    assert [(p["id"], p["state"]) for p in sent] == [(one.pk, "resolved"), (many[0].pk, "resolved"),
                                                     (many[1].pk, "resolved")]


def test_an_outage_is_fired_and_resolved_in_queries_that_do_not_grow_with_its_size(env, local, host):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ops_portal.containers.models import Container

    state_rule(env, "container_not_running")

    def queries_of_an_outage(size, now):
        boxes = [container(local, f"out{size}-{n}", state="exited", exit_code=1, finished_at=at(now - 60), host=host)
                 for n in range(size)]
        with CaptureQueriesContext(connection) as firing:
            assert evaluate(now=now) == {"fired": size, "resolved": 0}
        Container.objects.filter(pk__in=[b.pk for b in boxes]).update(state="running", started_at=at(now))
        with CaptureQueriesContext(connection) as resolving:
            assert evaluate(now=now + 1) == {"fired": 0, "resolved": size}
        return len(firing), len(resolving)

    assert queries_of_an_outage(3, NOW) == queries_of_an_outage(40, NOW + 10)


def test_fire_many_falls_back_to_one_at_a_time_when_a_key_was_opened_meanwhile(env, host, monkeypatch):
    """Another evaluator opens one of the keys between fire_many's read of the open keys and its
    INSERT: the batch's savepoint is rolled back and each alert is opened on its own, the one
    opened meanwhile kept, none twice."""
    rule = state_rule(env, "container_not_running")
    actor = Actor.system()
    items = [{"key": f"{rule.pk}:container:{n}", "host": host, "severity": "warning", "summary": f"box-{n} exited",
              "subject": ("container", n, f"box-{n}")} for n in (1, 2, 3)]
    real_now, meanwhile = services.timezone.now, []

    def now_after_another_evaluator():  # fire_many reads the time after it read the open keys
        if not meanwhile:
            meanwhile.append("opening")
            services.fire(actor, source="rule", environment=env, rule=rule, **items[1])
        return real_now()

    monkeypatch.setattr(services.timezone, "now", now_after_another_evaluator)
    opened = services.fire_many(actor, source="rule", environment=env, rule=rule, items=items)
    assert sorted(a.subject_id for a in opened) == [1, 3]
    assert sorted(Alert.objects.filter(state="firing").values_list("subject_id", flat=True)) == [1, 2, 3]
    assert AuditEvent.objects.filter(action="alert.fire").count() == 3


def test_an_outage_of_more_alerts_than_the_group_size_is_one_notification_listing_them(
        env, local, host, settings, monkeypatch, django_capture_on_commit_callbacks):
    from ops_portal.notifications import tasks
    from ops_portal.notifications.models import Delivery
    from tests.notifications.helpers import channel

    monkeypatch.setattr(tasks.deliver, "apply_async", lambda *a, **kw: None)
    monkeypatch.setattr(tasks.fan_out, "apply_async", lambda *a, **kw: None)
    monkeypatch.setattr(services, "GROUP_LISTED", 3)
    settings.ALERT_NOTIFY_GROUP_OVER = 3
    channel(env, "hook", events=["alert.firing", "alert.resolved"])
    state_rule(env, "container_not_running", severity="critical", name="boxes-down")
    boxes = [container(local, f"box-{n}", state="exited", exit_code=1, finished_at=at(NOW - 60), host=host)
             for n in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        assert evaluate(now=NOW)["fired"] == 4
    (grouped,) = Delivery.objects.filter(event="alert.firing")
    assert grouped.subject == "[critical] 4 alerts firing — boxes-down"
    payload = grouped.payload
    assert (payload["kind"], payload["state"], payload["count"], payload["severity"], payload["rule_name"],
            payload["environment_name"], payload["unlisted"]) == ("alert_group", "firing", 4, "critical",
                                                                 "boxes-down", "alpha", 1)
    assert [a["subject_name"] for a in payload["alerts"]] == ["box-0", "box-1", "box-2"]
    assert AuditEvent.objects.filter(action="alert.fire").count() == 4  # each alert is still its own row

    from ops_portal.containers.models import Container
    Container.objects.filter(pk__in=[b.pk for b in boxes[:3]]).update(state="running", started_at=at(NOW))
    with django_capture_on_commit_callbacks(execute=True):
        assert evaluate(now=NOW + 1)["resolved"] == 3  # not more than the group size: one each
    assert sorted(Delivery.objects.filter(event="alert.resolved").values_list("subject", flat=True)) == [
        f"Resolved: box-{n} (container on engine local): exited (exit code 1) — boxes-down" for n in range(3)]
