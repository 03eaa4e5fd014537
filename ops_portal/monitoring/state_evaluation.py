"""Evaluating state rules: containers not running, Swarm services short of tasks, programs not
RUNNING, read from the database state the container watcher and program refreshes keep current.

For each object of the rule's scope that is failing now (states.py), the time it went bad is its
own row's timestamp when it keeps one (a container's exit, a program's stop), else the time the
evaluation first saw it failing (a PendingState row, removed once it is fine again). The alert
fires, one per (rule, subject), once that time is for_seconds old; it resolves when the object is
healthy again, gone, or out of the rule's scope. The rule row is locked while it is evaluated and
one open alert per key is a database constraint, so running twice changes nothing.
"""
import datetime

from ops_portal.inventory.models import Host

from . import services, states
from .choices import OPEN_STATES, RULE_SOURCE, SubjectKind
from .models import Alert, PendingState, state_key


def summary(rule, failing):
    where = f" {failing.where}" if failing.where else ""
    held = f" for {rule.for_seconds}s" if rule.for_seconds else ""
    return f"{failing.name}{where}: {failing.detail}{held} — {rule.name}"


def evaluate_state_rule(actor, rule, now):
    """Fire and resolve the alerts of one locked, enabled state rule at `now` (unix seconds)."""
    outcome = {"fired": 0, "resolved": 0}
    state_kind = states.get(rule.kind)
    subject_kind = state_kind.subject_kind
    at = datetime.datetime.fromtimestamp(now, datetime.UTC)
    failing = {f.subject_id: f for f in state_kind.failing(rule) if states.name_matches(rule, f.name)}
    open_alerts = {alert.key: alert for alert in Alert.objects.filter(rule=rule, state__in=OPEN_STATES)}
    pending = {row.subject_id: row for row in PendingState.objects.filter(rule=rule, subject_kind=subject_kind)}
    # Pending rows of subjects that are fine again, or of another kind (the rule's kind changed).
    PendingState.objects.filter(rule=rule).exclude(subject_kind=subject_kind, subject_id__in=list(failing)).delete()
    new_pending, to_fire = [], []
    for subject_id, item in failing.items():
        if open_alerts.pop(state_key(rule.pk, subject_kind, subject_id), None) is not None:
            continue
        since = item.since
        if since is None:
            row = pending.get(subject_id)
            if row is None:
                new_pending.append(PendingState(rule=rule, subject_kind=subject_kind, subject_id=subject_id, since=at))
                since = at
            else:
                since = row.since
        if (at - since).total_seconds() >= rule.for_seconds:
            to_fire.append(item)
    PendingState.objects.bulk_create(new_pending, ignore_conflicts=True)
    hosts = Host.objects.in_bulk({f.host_id for f in to_fire if f.host_id is not None})
    opened = services.fire_many(actor, source=RULE_SOURCE, environment=rule.environment, rule=rule, items=[
        {"key": state_key(rule.pk, subject_kind, item.subject_id), "host": hosts.get(item.host_id),
         "severity": rule.severity, "summary": summary(rule, item),
         "subject": (subject_kind, item.subject_id, item.name)}
        for item in to_fire])
    outcome["fired"] = len(opened)
    # What is left open is about a subject that is fine again, gone, or no longer in scope.
    left = {alert.subject_id for alert in open_alerts.values()
            if alert.subject_kind == subject_kind and alert.subject_id is not None}
    present = {subject_id for subject_id, name in (state_kind.in_scope(rule, left) if left else {}).items()
               if subject_id not in failing and states.name_matches(rule, name)}
    what = subject_word(subject_kind)
    resolutions = {}
    for alert in open_alerts.values():
        if alert.subject_kind == subject_kind and alert.subject_id in present:
            resolutions[alert.pk] = f"the {what} {state_kind.recovered}"
        elif alert.subject_kind == subject_kind:
            resolutions[alert.pk] = f"the {what} is gone or out of the rule's scope"
        else:
            resolutions[alert.pk] = "the rule now watches something else"
    outcome["resolved"] = len(services.resolve_many(actor, resolutions))
    return outcome


def subject_word(subject_kind):
    label = SubjectKind(subject_kind).label
    return label if label.startswith("Swarm") else label.lower()
