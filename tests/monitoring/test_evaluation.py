"""Rule evaluation: thresholds held for a while, hysteresis, scope, and the alert lifecycle around it."""
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core.context import Actor
from ops_portal.core.errors import StateConflict
from ops_portal.inventory import services as inventory
from ops_portal.monitoring import services, streams  # noqa: F401  (the stream is registered)
from ops_portal.monitoring.evaluation import evaluate
from ops_portal.monitoring.models import Alert
from ops_portal.notifications.models import Delivery
from tests import factories
from tests.helpers import act
from tests.monitoring.helpers import T0, open_alerts, rule, series_values
from tests.notifications.helpers import channel

pytestmark = pytest.mark.django_db


@pytest.fixture
def host(env):
    return factories.host(env, "web-1", tags=["web"])


def test_an_alert_fires_only_once_the_condition_held_for_the_duration(env, host):
    rule(env, threshold=90, for_seconds=120)
    last = series_values(host, "cpu_percent", [50, 95, 96], start=T0)  # breaching since T0+60, for 60 s
    assert evaluate(now=last) == {"fired": 0, "resolved": 0}
    last = series_values(host, "cpu_percent", [97], start=last + 60)  # now for 120 s
    assert evaluate(now=last) == {"fired": 1, "resolved": 0}
    alert = Alert.objects.get()
    assert (alert.state, alert.host, alert.metric, alert.value, alert.threshold) == ("firing", host, "cpu_percent",
                                                                                   97.0, 90.0)
    assert alert.summary.startswith("web-1: CPU % is 97 (> 90 for 120s)")
    assert evaluate(now=last + 30) == {"fired": 0, "resolved": 0}  # one open alert per (rule, host, mount)
    assert Alert.objects.count() == 1


def test_a_dip_restarts_the_duration(env, host):
    rule(env, threshold=90, for_seconds=120)
    last = series_values(host, "cpu_percent", [95, 96, 80, 97, 98], start=T0)
    assert evaluate(now=last)["fired"] == 0  # breaching again only since the dip
    last = series_values(host, "cpu_percent", [99], start=last + 60)
    assert evaluate(now=last)["fired"] == 1


def test_a_breach_seen_after_a_gap_counts_from_its_first_sample(env, host):
    rule(env, threshold=90, for_seconds=120)
    series_values(host, "cpu_percent", [50], start=T0)
    last = series_values(host, "cpu_percent", [95], start=T0 + 300)  # nothing in between (host was away)
    assert evaluate(now=last)["fired"] == 0


def test_hysteresis_keeps_the_alert_until_the_value_passes_the_clear_threshold(env, host):
    rule(env, threshold=90, clear_threshold=70)
    last = series_values(host, "cpu_percent", [95], start=T0)
    assert evaluate(now=last)["fired"] == 1
    last = series_values(host, "cpu_percent", [85, 75], start=last + 60)  # below 90, above 70
    assert evaluate(now=last) == {"fired": 0, "resolved": 0}
    assert open_alerts()[0].state == "firing"
    last = series_values(host, "cpu_percent", [65], start=last + 60)
    assert evaluate(now=last) == {"fired": 0, "resolved": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.value, alert.resolution) == ("resolved", 65.0,
                                                             "the value is back past the clear threshold")
    last = series_values(host, "cpu_percent", [95], start=last + 60)  # a new problem is a new alert
    assert evaluate(now=last)["fired"] == 1 and Alert.objects.count() == 2


def test_below_rules_watch_the_other_side(env, host):
    rule(env, name="down", metric="reachable", comparator="<", threshold=1, for_seconds=60, severity="critical")
    last = series_values(host, "reachable", [1, 0, 0], start=T0)
    assert evaluate(now=last)["fired"] == 1
    assert open_alerts()[0].severity == "critical"
    last = series_values(host, "reachable", [1], start=last + 60)
    assert evaluate(now=last)["resolved"] == 1


def test_disk_rules_alert_per_mount_and_can_watch_one_mount(env, host):
    every = rule(env, name="disks", metric="disk_percent", threshold=80)
    data = rule(env, name="data", metric="disk_percent", threshold=50, mount="/mnt/data")
    series_values(host, "disk_percent", [85], start=T0, mount="/")
    last = series_values(host, "disk_percent", [90], start=T0, mount="/mnt/data")
    assert evaluate(now=last)["fired"] == 3
    assert sorted(a.mount for a in open_alerts(rule=every)) == ["/", "/mnt/data"]
    assert [a.mount for a in open_alerts(rule=data)] == ["/mnt/data"]


def test_stale_samples_neither_fire_nor_resolve(env, host, settings):
    settings.MONITORING_STALE_SECONDS = 300
    rule(env, threshold=90)
    last = series_values(host, "cpu_percent", [95], start=T0)
    assert evaluate(now=last + 301)["fired"] == 0
    assert evaluate(now=last)["fired"] == 1
    assert evaluate(now=last + 400)["resolved"] == 0  # the host went quiet: keep the alert


def test_an_alert_on_a_series_the_host_stopped_reporting_resolves(env, host):
    rule(env, metric="disk_percent", threshold=80)
    last = series_values(host, "disk_percent", [95], start=T0, mount="/media/usb")
    series_values(host, "reachable", [1], start=T0)
    assert evaluate(now=last)["fired"] == 1
    later = series_values(host, "reachable", [1], start=T0 + 900)  # reachable, but the mount is gone
    assert evaluate(now=later)["resolved"] == 1
    assert Alert.objects.get().resolution == "the host no longer reports this series"


def test_scope_by_group_and_tag_and_alerts_of_hosts_leaving_it_resolve(env, host):
    group = factories.host_group(env, "frontends")
    other = factories.host(env, "db-1", tags=["db"])
    host.groups.add(group)
    watched = rule(env, threshold=90, group=group, tag="web")
    series_values(host, "cpu_percent", [95], start=T0)
    last = series_values(other, "cpu_percent", [95], start=T0)
    assert evaluate(now=last)["fired"] == 1
    assert open_alerts()[0].host == host
    inventory.update_host(Actor.system(), host, tags=["db"])
    assert evaluate(now=last) == {"fired": 0, "resolved": 1}
    assert Alert.objects.get(rule=watched).resolution == "the host is no longer in the rule's scope"


def test_disabling_or_deleting_a_rule_resolves_its_alerts_and_keeps_the_history(env, host):
    first = rule(env, name="cpu", threshold=90)
    second = rule(env, name="cpu-hot", threshold=80)
    last = series_values(host, "cpu_percent", [95], start=T0)
    assert evaluate(now=last)["fired"] == 2
    services.update_rule(Actor.system(), first, enabled=False)
    assert Alert.objects.get(rule=first).resolution == "the rule was disabled"
    assert evaluate(now=last)["fired"] == 0
    services.delete_rule(Actor.system(), second)
    resolved = Alert.objects.get(rule=None)
    assert (resolved.state, resolved.resolution) == ("resolved", "the rule was deleted")


def test_every_transition_is_audited_and_notified(env, host, make_user, django_capture_on_commit_callbacks):
    hooks = channel(env, "oncall", events=["alert.firing", "alert.resolved"])
    rule(env, threshold=90, clear_threshold=50)
    last = series_values(host, "cpu_percent", [95], start=T0)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(now=last)
    alert = Alert.objects.get()
    operator = make_user(Role.OPERATOR, env)
    services.acknowledge(act(operator, source="web"), alert, "looking at the batch job")
    last = series_values(host, "cpu_percent", [40], start=last + 60)
    evaluate(now=last)
    events = list(AuditEvent.objects.filter(object_type="monitoring.alert").order_by("pk")
                  .values_list("action", "actor_name", "source"))
    assert events == [("alert.fire", "", "system"), ("alert.acknowledge", operator.username, "web"),
                      ("alert.resolve", "", "system")]
    deliveries = list(Delivery.objects.filter(channel=hooks).order_by("pk").values_list("event", "subject"))
    assert [event for event, _ in deliveries] == ["alert.firing", "alert.resolved"]
    assert deliveries[0][1].startswith("[warning] web-1: CPU % is 95")
    assert Delivery.objects.get(event="alert.firing").payload["environment_name"] == "alpha"


def test_acknowledging_needs_operate_a_note_and_a_firing_alert(env, host, make_user):
    alert, _ = services.fire(Actor.system(), source="rule", key="x", environment=env, host=host, severity="info",
                             summary="probe")
    viewer = make_user(Role.VIEWER, env)
    with pytest.raises(PermissionDenied):
        services.acknowledge(act(viewer), alert, "mine")
    operator = make_user(Role.OPERATOR, env)
    with pytest.raises(ValidationError):
        services.acknowledge(act(operator), alert, "  ")
    acked = services.acknowledge(act(operator), alert, "restarting the worker")
    assert (acked.state, acked.acknowledged_by, acked.note) == ("acknowledged", operator, "restarting the worker")
    with pytest.raises(StateConflict):
        services.acknowledge(act(operator), alert, "again")
    elsewhere = make_user(Role.OPERATOR, factories.environment("beta"))
    other, _ = services.fire(Actor.system(), source="rule", key="y", environment=env, severity="info",
                             summary="other")
    with pytest.raises(PermissionDenied):
        services.acknowledge(act(elsewhere), other, "not mine")


def test_an_acknowledged_alert_still_resolves_by_itself(env, host, make_user):
    rule(env, threshold=90)
    last = series_values(host, "cpu_percent", [95], start=T0)
    evaluate(now=last)
    services.acknowledge(act(make_user(Role.OPERATOR, env), source="web"), Alert.objects.get(), "on it")
    last = series_values(host, "cpu_percent", [10], start=last + 60)
    assert evaluate(now=last)["resolved"] == 1
    assert Alert.objects.get().state == "resolved"


def test_external_alerts_are_idempotent_and_follow_their_source(env, host):
    first = services.raise_external("drift", f"host:{host.pk}:/etc/app.conf", environment=env, host=host,
                                    severity="warning", summary="app.conf drifted")
    again = services.raise_external("drift", f"host:{host.pk}:/etc/app.conf", environment=env.pk, host=host,
                                    severity="critical", summary="app.conf drifted twice")
    assert first.pk == again.pk and Alert.objects.count() == 1
    assert (again.severity, again.summary, again.rule) == ("critical", "app.conf drifted twice", None)
    assert services.resolve_external("drift", f"host:{host.pk}:/etc/app.conf").state == "resolved"
    assert services.resolve_external("drift", f"host:{host.pk}:/etc/app.conf") is None
    assert services.resolve_external("compliance", "never-raised") is None
    actions = list(AuditEvent.objects.filter(object_type="monitoring.alert").order_by("pk")
                   .values_list("action", flat=True))
    assert actions == ["alert.fire", "alert.update", "alert.resolve"]
    with pytest.raises(ValueError):
        services.raise_external("rule", "k", environment=env, severity="info", summary="pretending")
    with pytest.raises(ValueError):
        services.raise_external("drift", "k", environment=factories.environment("beta"), host=host,
                                severity="info", summary="wrong environment")


def test_two_evaluators_at_once_open_one_alert(env, host):
    rule(env, threshold=90)
    last = series_values(host, "cpu_percent", [95], start=T0)
    with transaction.atomic():
        assert evaluate(now=last)["fired"] == 1
        assert evaluate(now=last)["fired"] == 0
    assert Alert.objects.count() == 1


def test_rule_validation(env, host):
    other_group = factories.host_group(factories.environment("beta"), "elsewhere")
    for fields, field in [({"comparator": ">", "threshold": 80, "clear_threshold": 90}, "clear_threshold"),
                          ({"comparator": "<", "threshold": 10, "clear_threshold": 5}, "clear_threshold"),
                          ({"metric": "cpu_percent", "mount": "/var"}, "mount"),
                          ({"group": other_group}, "group"),
                          ({"for_seconds": 86401}, "for_seconds"),
                          ({"runbook_id": 999999}, "runbook_template_id")]:
        with pytest.raises(ValidationError) as caught:
            rule(env, **fields)
        assert field in caught.value.message_dict, fields
