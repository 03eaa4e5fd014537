"""Alert rules and alerts. Every change is audited in its transaction; alerts are announced
(notifications, the "alerts" stream) once it commits.

Other apps raise and resolve alerts that do not come from metrics with raise_external() and
resolve_external(), e.g. configuration drift or failed compliance checks:

    raise_external("drift", f"host:{host.pk}:/etc/nginx.conf", environment=host.environment, host=host,
                   severity="warning", summary="nginx.conf differs from its desired state")

An alert is about a subject (Alert.subject_kind/subject_id/subject_name): by default its host, or
nothing; an alert of another level's object names it, e.g. subject=("program", program.pk, name).
    resolve_external("drift", f"host:{host.pk}:/etc/nginx.conf")
"""
import json
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import require_on
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, record_many, snapshot
from ops_portal.core import streams
from ops_portal.core.context import Actor
from ops_portal.core.errors import StateConflict
from ops_portal.jobs.models import JobTemplate
from ops_portal.notifications.services import notify, notify_many

from .choices import OPEN_STATES, RULE_SOURCE, AlertState, Severity, SubjectKind
from .models import Alert, AlertRule, PendingState

SOURCE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}\Z")
MAX_NOTE = 2000


def group(environment_id):
    """The Channels group of an environment's alerts."""
    return f"alerts.env.{environment_id}"


# Rules -------------------------------------------------------------------------------------

def _runbook_id(fields, rule=None):
    """The runbook template id the fields give (as `runbook` or as its id), else the rule's."""
    if "runbook" in fields:
        return getattr(fields["runbook"], "pk", fields["runbook"])
    if "runbook_id" in fields:
        return fields["runbook_id"]
    return rule.runbook_id if rule is not None else None


def _check_runbook(environment, template_id):
    """The runbook must be a job template of the rule's environment."""
    if template_id is None or environment is None:
        return
    if not JobTemplate.objects.filter(pk=template_id, environment=environment).exists():
        raise ValidationError({"runbook_template_id": [f"No job template {template_id} in {environment}."]})


def create_rule(actor, **fields):
    _check_runbook(fields.get("environment"), _runbook_id(fields))
    return create_object(actor, AlertRule, fields)


def update_rule(actor, rule, **fields):
    """Change a rule; disabling it resolves its open alerts (in the same transaction)."""
    with transaction.atomic():
        _check_runbook(fields.get("environment", rule.environment), _runbook_id(fields, rule))
        rule = update_object(actor, rule, fields)
        if not rule.enabled:
            _resolve_all(actor, rule, "the rule was disabled")
            PendingState.objects.filter(rule=rule).delete()  # enabled again, it counts anew
    return rule


def delete_rule(actor, rule):
    """Delete a rule; its open alerts resolve first, its alert history stays."""
    with transaction.atomic():
        if actor.user is not None:
            require_on(actor.user, Action.MANAGE, rule)
        _resolve_all(actor, rule, "the rule was deleted")
        delete_object(actor, rule)


def _resolve_all(actor, rule, resolution):
    ids = Alert.objects.filter(rule=rule, state__in=OPEN_STATES).values_list("pk", flat=True)
    resolve_many(actor, dict.fromkeys(ids, resolution))


# Alerts ------------------------------------------------------------------------------------

def alert_payload(alert):
    """What the stream and notifications carry about an alert."""
    return {
        "kind": "alert", "id": alert.pk, "state": alert.state, "severity": alert.severity,
        "summary": alert.summary, "source": alert.source, "environment": alert.environment_id,
        "environment_name": alert.environment.name,
        "runbook_template_id": alert.rule.runbook_id if alert.rule_id else None,
        "host": alert.host_id, "host_name": alert.host_name, "subject_kind": alert.subject_kind,
        "subject_id": alert.subject_id, "subject_name": alert.subject_name, "metric": alert.metric,
        "mount": alert.mount,
        "value": alert.value, "threshold": alert.threshold, "rule": alert.rule_id,
        "fired_at": alert.fired_at.isoformat(),
        "acknowledged_by": alert.acknowledged_by_name, "note": alert.note,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "resolution": alert.resolution,
    }


def _announce(alert, event=None):
    payload = alert_payload(alert)
    transaction.on_commit(lambda: streams.publish(group(alert.environment_id), payload))
    if event is not None:
        environment = alert.environment
        subject = f"[{alert.severity}] {alert.summary}" if event == "alert.firing" else f"Resolved: {alert.summary}"
        notify(event, environment=environment, subject=subject, payload=payload,
               dedupe_key=f"alert:{alert.pk}:{event}")


def _subject(subject, host):
    """(kind, id, name) of an alert's subject: the one given, else its host, else none."""
    if subject is None:
        return (SubjectKind.HOST, host.pk, host.name) if host is not None else ("", None, "")
    kind, subject_id, name = subject
    if kind not in SubjectKind.values or not isinstance(subject_id, int) or subject_id < 1:
        raise ValueError(f"an alert subject is (one of {', '.join(SubjectKind.values)}, a positive id, a name)")
    return kind, subject_id, str(name)[:255]


def fire(actor, *, source, key, environment, severity, summary, host=None, rule=None, metric="", mount="",
         value=None, threshold=None, subject=None):
    """Open an alert for (source, key) unless one is open. Returns (alert, opened). `subject` is
    (kind, id, name) of what it is about (default: its host)."""
    subject_kind, subject_id, subject_name = _subject(subject, host)
    with transaction.atomic():
        existing = Alert.objects.select_for_update().filter(source=source, key=key, state__in=OPEN_STATES).first()
        if existing is not None:
            return existing, False
        alert = Alert(source=source, key=key[:200], environment=environment, host=host,
                      host_name=host.name if host is not None else "", rule=rule, metric=metric, mount=mount,
                      subject_kind=subject_kind, subject_id=subject_id, subject_name=subject_name,
                      severity=severity, summary=" ".join(str(summary).split())[:500], value=value,
                      threshold=threshold, fired_at=timezone.now())
        alert.full_clean(exclude=["rule", "host", "environment", "acknowledged_by"], validate_constraints=False)
        try:
            with transaction.atomic():  # a savepoint: another evaluator may have opened it meanwhile
                alert.save()
        except IntegrityError:
            return Alert.objects.get(source=source, key=key, state__in=OPEN_STATES), False
        record(actor, "alert.fire", alert, after=snapshot(alert))
        _announce(alert, "alert.firing")
    return alert, True


# How many alerts one INSERT or UPDATE of fire_many()/resolve_many() handles.
BATCH = 500


def _chunks(items, size=BATCH):
    items = list(items)
    return [items[start:start + size] for start in range(0, len(items), size)]


def fire_many(actor, *, source, environment, rule, items):
    """fire() for many keys of one source, environment and rule at once (a state rule's evaluation
    that sees an outage of thousands of containers): `items` are dicts of fire()'s other keyword
    arguments (key, severity, summary, host, subject, metric, mount, value, threshold). Keys with an
    open alert are left as they are. The same rows, audit rows, notifications and stream events as
    fire(), written 500 at a time. Returns the alerts opened."""
    opened = []
    if not items:
        return opened
    with transaction.atomic():
        for chunk in _chunks(items):
            opened.extend(_fire_chunk(actor, source, environment, rule, chunk))
    return opened


def _fire_chunk(actor, source, environment, rule, items):
    keys = [item["key"][:200] for item in items]
    taken = set(Alert.objects.filter(source=source, key__in=keys, state__in=OPEN_STATES).values_list("key", flat=True))
    now = timezone.now()
    alerts = []
    for item, key in zip(items, keys, strict=True):
        if key in taken:
            continue
        taken.add(key)  # a key given twice opens one alert
        host = item.get("host")
        subject_kind, subject_id, subject_name = _subject(item.get("subject"), host)
        alert = Alert(source=source, key=key, environment=environment, host=host,
                      host_name=host.name if host is not None else "", rule=rule, metric=item.get("metric", ""),
                      mount=item.get("mount", ""), subject_kind=subject_kind, subject_id=subject_id,
                      subject_name=subject_name, severity=item["severity"],
                      summary=" ".join(str(item["summary"]).split())[:500], value=item.get("value"),
                      threshold=item.get("threshold"), fired_at=now)
        alert.clean_fields(exclude=["rule", "host", "environment", "acknowledged_by", "key", "summary"])
        alert.clean()
        alerts.append(alert)
    if not alerts:
        return []
    try:
        with transaction.atomic():  # a savepoint: another evaluator opened one meanwhile
            Alert.objects.bulk_create(alerts)
    except IntegrityError:
        return [alert for alert, made in (fire(actor, source=source, environment=environment, rule=rule, **item)
                                          for item in items) if made]
    record_many(actor, "alert.fire", [(alert, None, snapshot(alert)) for alert in alerts], environment=environment)
    _announce_many(environment, alerts, "alert.firing")
    return alerts


def resolve_many(actor, resolutions, *, values=None):
    """resolve() for many alerts at once: `resolutions` maps an alert's id to its resolution,
    `values` (optional) an alert's id to its value at resolution. Alerts closed meanwhile stay as
    they are. The same rows, audit rows, notifications and stream events as resolve(), written 500
    at a time. Returns the alerts resolved."""
    values = {pk: value for pk, value in (values or {}).items() if value is not None}
    resolved = []
    if not resolutions:
        return resolved
    with transaction.atomic():
        for chunk in _chunks(resolutions):
            alerts = list(Alert.objects.select_for_update(of=("self",)).select_related("rule", "environment")
                          .filter(pk__in=chunk, state__in=OPEN_STATES).order_by("pk"))
            now = timezone.now()
            changes, by_text = {}, {}
            for alert in alerts:
                before = snapshot(alert)
                alert.state, alert.resolved_at = AlertState.RESOLVED, now
                alert.resolution = resolutions[alert.pk][:200]
                alert.value = values.get(alert.pk, alert.value)
                by_text.setdefault(alert.resolution, []).append(alert.pk)
                changes.setdefault(alert.environment_id, []).append((alert, before, snapshot(alert)))
            if any(alert.pk in values for alert in alerts):
                Alert.objects.bulk_update(alerts, ["state", "resolved_at", "resolution", "value"])
            else:
                for text, ids in by_text.items():
                    Alert.objects.filter(pk__in=ids).update(state=AlertState.RESOLVED, resolved_at=now,
                                                            resolution=text)
            for rows in changes.values():  # alerts of a rule share its environment; others may not
                environment = rows[0][0].environment
                record_many(actor, "alert.resolve", rows, environment=environment)
                _announce_many(environment, [alert for alert, _, _ in rows], "alert.resolved")
            resolved.extend(alerts)
    return resolved


def _announce_many(environment, alerts, event):
    """_announce() for alerts of one environment: one stream hop, and one notify_many(): a
    notification per alert, or one listing them all when they are more than
    settings.ALERT_NOTIFY_GROUP_OVER (a channel is not paged 5,000 times for one outage)."""
    payloads = [alert_payload(alert) for alert in alerts]
    name = group(environment.pk)
    transaction.on_commit(lambda: streams.publish_each([(name, payload) for payload in payloads]))
    if len(alerts) > settings.ALERT_NOTIFY_GROUP_OVER:
        notices = [_group_notice(environment, alerts, payloads, event)]
    else:
        prefix = "Resolved: " if event == "alert.resolved" else ""
        notices = [(f"{prefix}{alert.summary}" if prefix else f"[{alert.severity}] {alert.summary}", payload,
                    f"alert:{alert.pk}:{event}") for alert, payload in zip(alerts, payloads, strict=True)]
    notify_many(event, environment=environment, notices=notices)


# What one grouped notification lists of its alerts: at most this many, in at most this many bytes
# of JSON (a delivery's payload is at most 64 KiB); `unlisted` counts the others.
GROUP_LISTED = 50
GROUP_LISTED_BYTES = 48 * 1024
SEVERITY_ORDER = [Severity.INFO, Severity.WARNING, Severity.CRITICAL]


def _group_notice(environment, alerts, payloads, event):
    """(subject, payload, dedupe key) of one notification about many alerts of one pass."""
    rules = {alert.rule_id for alert in alerts}
    rule = alerts[0].rule if len(rules) == 1 and alerts[0].rule_id else None
    worst = max((alert.severity for alert in alerts), key=SEVERITY_ORDER.index)
    state = "resolved" if event == "alert.resolved" else "firing"
    subject = f"{len(alerts)} alerts {state}" + (f" — {rule.name}" if rule else "")
    listed, size = [], 0
    for payload in payloads:
        size += len(json.dumps(payload, cls=DjangoJSONEncoder))
        if len(listed) == GROUP_LISTED or size > GROUP_LISTED_BYTES:
            break
        listed.append(payload)
    payload = {"kind": "alert_group", "state": state, "count": len(alerts), "severity": worst,
               "environment": environment.pk, "environment_name": environment.name,
               "rule": rule.pk if rule else None, "rule_name": rule.name if rule else "",
               "alerts": listed, "unlisted": len(alerts) - len(listed)}
    return (subject if state == "resolved" else f"[{worst}] {subject}", payload,
            f"alerts:{alerts[0].pk}-{alerts[-1].pk}:{len(alerts)}:{event}")


def acknowledge(actor, alert, note):
    """Someone looks into a firing alert (operate in its environment, with a note)."""
    note = (note or "").strip()
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("environment").get(pk=alert.pk)
        if actor.user is not None:
            require_on(actor.user, Action.OPERATE, alert)
        if not note:
            raise ValidationError({"note": ["Say what you are doing about it."]})
        if len(note) > MAX_NOTE:
            raise ValidationError({"note": [f"At most {MAX_NOTE} characters."]})
        if alert.state != AlertState.FIRING:
            raise StateConflict({"state": [f"Only a firing alert can be acknowledged; this one is "
                                           f"{alert.get_state_display().lower()}."]})
        before = snapshot(alert)
        alert.state = AlertState.ACKNOWLEDGED
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by_id = actor.user_id
        alert.acknowledged_by_name = actor.username
        alert.note = note
        alert.save()
        record(actor, "alert.acknowledge", alert, before=before, after=snapshot(alert))
        _announce(alert)
    return alert


def resolve(actor, alert, *, resolution, value=None):
    """Close an open alert (from evaluation or an external source); a closed one stays as it is."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("environment").get(pk=alert.pk)
        if not alert.is_open:
            return alert
        before = snapshot(alert)
        alert.state = AlertState.RESOLVED
        alert.resolved_at = timezone.now()
        alert.resolution = resolution[:200]
        if value is not None:
            alert.value = value
        alert.save()
        record(actor, "alert.resolve", alert, before=before, after=snapshot(alert))
        _announce(alert, "alert.resolved")
    return alert


# Alerts from other apps --------------------------------------------------------------------

def _check_external(source, key):
    if not isinstance(source, str) or not SOURCE.match(source) or source == RULE_SOURCE:
        raise ValueError(f"alert source {source!r} must be a short lower-case name other than {RULE_SOURCE!r}")
    if not isinstance(key, str) or not key or len(key) > 200:
        raise ValueError("an alert key is a non-empty string of at most 200 characters")


def raise_external(source, key, *, environment, host=None, severity, summary, actor=None, subject=None):
    """Open the alert (source, key), or keep the open one (its severity, summary and subject follow
    the latest call). `subject`: (kind, id, name) of what it is about (default: the host). Idempotent.
    Returns the open alert."""
    _check_external(source, key)
    if severity not in Severity.values:
        raise ValueError(f"severity must be one of {', '.join(Severity.values)}")
    actor = actor or Actor.system()
    if not isinstance(environment, Environment):
        environment = Environment.objects.get(pk=environment)
    if host is not None and host.environment_id != environment.pk:
        raise ValueError(f"host {host} is not in {environment}")
    with transaction.atomic():
        alert, opened = fire(actor, source=source, key=key, environment=environment, host=host, severity=severity,
                             summary=summary, subject=subject)
        summary = " ".join(str(summary).split())[:500]
        latest = (severity, summary, *_subject(subject, host))
        if not opened and (alert.severity, alert.summary, alert.subject_kind, alert.subject_id,
                           alert.subject_name) != latest:
            before = snapshot(alert)
            (alert.severity, alert.summary, alert.subject_kind, alert.subject_id, alert.subject_name) = latest
            alert.save(update_fields=["severity", "summary", "subject_kind", "subject_id", "subject_name"])
            record(actor, "alert.update", alert, before=before, after=snapshot(alert))
            _announce(alert)
    return alert


def resolve_external(source, key, *, actor=None, resolution=""):
    """Resolve the open alert (source, key), if there is one. Idempotent. Returns it or None."""
    _check_external(source, key)
    alert = Alert.objects.filter(source=source, key=key, state__in=OPEN_STATES).first()
    if alert is None:
        return None
    return resolve(actor or Actor.system(), alert, resolution=resolution or f"resolved by {source}")
