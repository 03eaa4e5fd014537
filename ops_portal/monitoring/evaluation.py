"""Evaluating alert rules against the raw samples (state rules: state_evaluation.py).

Stateless: whether a condition has held for `for_seconds` is read from the samples themselves,
so evaluators may restart, run on any worker, or run twice (the rule row is locked while it is
evaluated; one open alert per (rule, host, mount) is also a database constraint).

For one series of a rule, over the window [now - for_seconds - LOOKBACK, now]:
- it breaches when its latest sample breaches (value > threshold, or < for "below" rules);
- the breach started at the first sample after the latest non-breaching one;
- the alert fires when the breach started at least for_seconds before the latest sample, and the
  latest sample is fresh (not older than MONITORING_STALE_SECONDS);
- an open alert resolves when the latest sample is back past the clear threshold (hysteresis),
  when its host leaves the rule's scope, or when a reachable host stops reporting the series.

Container metric rules read the same way the series of the environment's containers (sampled by
the container stats jobs, subjects.py says which): one alert per container, about the container;
it resolves when the value is back, when the container leaves the scope (gone, renamed past the
filter), or when it stopped (no figures to judge: its state rule's business).
"""
import dataclasses
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min, Q

from ops_portal.core.context import Actor
from ops_portal.inventory.models import Host

from . import services, states, subjects
from .choices import METRIC_LABELS, OPEN_STATES, RULE_SOURCE, Comparator, Metric, RuleKind, SubjectKind
from .metrics import now_seconds
from .models import Alert, AlertRule, Sample, Series, rule_key, state_key
from .state_evaluation import evaluate_state_rule, subject_word

log = logging.getLogger(__name__)
LOOKBACK_SECONDS = 600


def stale_after():
    return getattr(settings, "MONITORING_STALE_SECONDS", 300)


def evaluate(actor=None, *, environment_id=None, now=None):
    """Evaluate every enabled rule (of one environment, or all). Returns {"fired": n, "resolved": n}."""
    actor = actor or Actor.system()
    totals = {"fired": 0, "resolved": 0}
    rules = AlertRule.objects.filter(enabled=True)
    if environment_id is not None:
        rules = rules.filter(environment_id=environment_id)
    for rule_id in rules.order_by("pk").values_list("pk", flat=True):
        try:
            outcome = evaluate_rule(actor, rule_id, now=now)
        except Exception:  # one broken rule must not stop the others
            log.exception("evaluating alert rule %s failed", rule_id)
            continue
        for name in totals:
            totals[name] += outcome[name]
    return totals


def hosts_in_scope(rule):
    """{host id: name} of the enabled hosts the rule covers."""
    queryset = Host.objects.filter(environment_id=rule.environment_id, enabled=True)
    if rule.group_id:
        queryset = queryset.filter(groups=rule.group_id)
    return {pk: name for pk, name, tags in queryset.values_list("pk", "name", "tags")
            if not rule.tag or rule.tag in (tags or [])}


def _conditions(rule):
    if rule.comparator == Comparator.GT:
        return Q(value__gt=rule.threshold), Q(value__lte=rule.clear_at)
    return Q(value__lt=rule.threshold), Q(value__gte=rule.clear_at)


def _latest_values(series_ids, since):
    values = {}
    rows = (Sample.objects.filter(series_id__in=series_ids, time__gte=since).order_by("series_id", "-time")
            .values_list("series_id", "value"))
    for series_id, value in rows:
        values.setdefault(series_id, round(value, 3))
    return values


@dataclasses.dataclass(frozen=True)
class Scoped:
    """One series a metric rule watches: whose it is and the key of its alert."""

    host_id: int
    mount: str  # the alert's mount (disks); "" for a container's series
    key: str
    name: str  # for the summary: the host's, or the container's with where it is
    subject: object = None  # a subjects.Subject for a container's series


def _host_series(rule):
    hosts = hosts_in_scope(rule)
    series = Series.objects.filter(host_id__in=hosts, metric=rule.metric)
    if rule.mount:
        series = series.filter(mount=rule.mount)
    return {pk: Scoped(host_id, mount, rule_key(rule.pk, host_id, mount), hosts[host_id])
            for pk, host_id, mount in series.values_list("pk", "host_id", "mount")}


def _subject_series(rule):
    """The series of the objects a container or program metric rule watches, by their (host, key);
    what they are; and after how many seconds their last sample is too old to judge."""
    declared = subjects.get(rule.kind)
    found = {(s.host_id, s.key): s for s in declared.in_scope(rule) if states.name_matches(rule, s.name)}
    series = (Series.objects.filter(host_id__in={host_id for host_id, _ in found}, metric=rule.metric)
              .values_list("pk", "host_id", "mount"))
    scoped = {}
    for pk, host_id, mount in series:
        subject = found.get((host_id, mount))
        if subject is not None:
            scoped[pk] = Scoped(host_id, "", state_key(rule.pk, declared.subject_kind, subject.subject_id),
                                f"{subject.name} {subject.where}".strip(), subject)
    return scoped, declared.subject_kind, (declared.stale_after or stale_after)()


def _summary(rule, name, mount, value):
    where = f" on {mount}" if mount else ""
    shown = f"{value:g}" if value is not None else "?"
    held = f" for {rule.for_seconds}s" if rule.for_seconds else ""
    label = METRIC_LABELS.get(rule.metric, rule.metric)
    return f"{name}: {label}{where} is {shown} ({rule.comparator} {rule.threshold:g}{held}) — {rule.name}"


def evaluate_rule(actor, rule_id, *, now=None):
    now = int(now if now is not None else now_seconds())
    outcome = {"fired": 0, "resolved": 0}
    with transaction.atomic():
        rule = (AlertRule.objects.select_for_update(no_key=True, of=("self",)).select_related("environment")
                .filter(pk=rule_id, enabled=True).first())
        if rule is None:
            return outcome
        if rule.is_state:
            return evaluate_state_rule(actor, rule, now)
        if rule.kind == RuleKind.METRIC:
            series, subject_kind, stale = _host_series(rule), SubjectKind.HOST, stale_after()
        else:
            series, subject_kind, stale = _subject_series(rule)
        open_alerts = {alert.key: alert for alert in Alert.objects.filter(rule=rule, state__in=OPEN_STATES)}
        window = now - rule.for_seconds - max(LOOKBACK_SECONDS, stale)
        breach, cleared = _conditions(rule)
        stats = {row["series_id"]: row for row in (
            Sample.objects.filter(series_id__in=series, time__gte=window).values("series_id")
            .annotate(last=Max("time"), first=Min("time"), last_ok=Max("time", filter=~breach),
                      last_clear=Max("time", filter=cleared)).order_by())}
        to_fire, to_resolve, unreported, candidates = [], [], [], {}
        for series_id, scoped in series.items():
            alert = open_alerts.pop(scoped.key, None)
            row = stats.get(series_id)
            if alert is not None:
                if alert.metric != rule.metric:
                    to_resolve.append((alert, None, "the rule now watches another metric"))
                elif row is None or now - row["last"] > stale:
                    if scoped.subject is None:
                        unreported.append((alert, scoped.host_id))
                    elif not scoped.subject.running:
                        to_resolve.append((alert, None, f"the {subject_word(subject_kind)} stopped (no figures)"))
                elif row["last_clear"] == row["last"]:
                    to_resolve.append((alert, series_id, "the value is back past the clear threshold"))
                continue
            if row is None or now - row["last"] > stale:
                continue
            if row["last_ok"] is not None and row["last_ok"] >= row["last"]:
                continue  # the latest sample does not breach
            if row["last_ok"] is None:
                if row["first"] <= row["last"] - rule.for_seconds:
                    to_fire.append(series_id)
            elif row["last_ok"] <= row["last"] - rule.for_seconds:
                candidates[series_id] = row
        to_fire += _held_long_enough(rule, candidates)
        # Open alerts whose host or series left the rule's scope, or of the state rule it was.
        for alert in open_alerts.values():
            about_host = alert.subject_kind in ("", SubjectKind.HOST)
            if about_host and subject_kind == SubjectKind.HOST:
                resolution = "the host is no longer in the rule's scope"
            elif alert.subject_kind == subject_kind and alert.metric == rule.metric:
                resolution = f"the {subject_word(subject_kind)} is gone or out of the rule's scope"
            else:
                resolution = "the rule now watches something else"
            to_resolve.append((alert, None, resolution))
        to_resolve += _no_longer_reported(unreported, now)
        values = _latest_values(to_fire + [s for _, s, _ in to_resolve if s is not None], window)
        host_objects = Host.objects.in_bulk({series[s].host_id for s in to_fire})
        items = []
        for series_id in to_fire:
            scoped = series[series_id]
            value = values.get(series_id)
            item = {"key": scoped.key, "host": host_objects[scoped.host_id], "metric": rule.metric,
                    "mount": scoped.mount, "severity": rule.severity,
                    "summary": _summary(rule, scoped.name, scoped.mount, value), "value": value,
                    "threshold": rule.threshold}
            if scoped.subject is not None:
                item["subject"] = (subject_kind, scoped.subject.subject_id, scoped.subject.name)
            items.append(item)
        outcome["fired"] = len(services.fire_many(actor, source=RULE_SOURCE, environment=rule.environment,
                                                  rule=rule, items=items))
        outcome["resolved"] = len(services.resolve_many(
            actor, {alert.pk: resolution for alert, _, resolution in to_resolve},
            values={alert.pk: values.get(series_id) for alert, series_id, _ in to_resolve}))
    return outcome


def _held_long_enough(rule, candidates):
    """Series whose breach, which began after a good sample, started for_seconds before the latest."""
    if not candidates:
        return []
    since = min(row["last_ok"] for row in candidates.values())
    starts = {}
    rows = (Sample.objects.filter(series_id__in=candidates, time__gt=since).order_by("series_id", "time")
            .values_list("series_id", "time"))
    for series_id, at in rows:
        if at > candidates[series_id]["last_ok"]:
            starts.setdefault(series_id, at)
    return [s for s, start in starts.items() if start <= candidates[s]["last"] - rule.for_seconds]


def _no_longer_reported(unreported, now):
    """Open alerts on series without fresh samples: resolved when their host still reports
    (a mount went away), kept while the host is unreachable."""
    if not unreported:
        return []
    reporting = set(
        Sample.objects.filter(series__host_id__in={h for _, h in unreported}, series__metric=Metric.REACHABLE,
                              time__gte=now - stale_after(), value__gte=1)
        .values_list("series__host_id", flat=True))
    return [(alert, None, "the host no longer reports this series") for alert, host_id in unreported
            if host_id in reporting]
