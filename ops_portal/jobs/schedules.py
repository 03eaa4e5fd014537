"""Schedules: launch templates on a clock through django-celery-beat's database scheduler.

Each JobSchedule owns one PeriodicTask calling jobs.run_schedule(schedule_id). A run takes a slot
(the nominal fire time, to the minute) that is unique per schedule, so a beat that restarts and
fires again does not launch twice. Gated templates need either a standing approval of the
schedule or an approval per run. A standing approval covers the schedule, its template's version
and the targets as resolved then, with their fingerprints (address, port, user, credential, host
key): a run whose targets differ asks for its own approval and waits for it.

Lock order, everywhere: the template row, then the schedule row (editing a template refreshes its
schedules; a firing launches the template).
"""
import datetime
import hashlib
import hmac
import json
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask
from django_celery_beat.validators import crontab_validator

from ops_portal.approvals import services as approvals
from ops_portal.approvals.choices import RequestState, ScheduleMode
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record
from ops_portal.core import targets as target_kinds
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import actions, limits, params
from .launch import launch
from .lifecycle import plan_targets
from .models import JobSchedule, JobTemplate, ScheduleRun

LATE_GRACE = timedelta(minutes=2)  # a run this late was missed (beat was down)


def _validate(fields, instance=None):
    merged = {**({} if instance is None else {f.name: getattr(instance, f.name)
                                              for f in JobSchedule._meta.concrete_fields}), **fields}
    kind, errors = merged.get("kind"), {}
    if kind == "cron":
        cron = (merged.get("cron") or "").strip()
        if len(cron.split()) != 5:
            errors["cron"] = ["Give five fields: minute hour day-of-month month day-of-week."]
        else:
            try:
                crontab_validator(cron)
            except Exception as exc:  # the validator raises ValidationError or ValueError
                errors["cron"] = [f"Not a valid cron expression: {getattr(exc, 'message', exc)}"]
        fields["cron"] = " ".join(cron.split())
    elif kind == "interval":
        if not merged.get("interval_seconds") or merged["interval_seconds"] < 10:
            errors["interval_seconds"] = ["Give an interval of at least 10 seconds."]
    elif kind == "once":
        if not merged.get("run_at"):
            errors["run_at"] = ["Say when it runs."]
    else:
        errors["kind"] = ["Choose cron, interval or once."]
    try:
        zoneinfo.ZoneInfo(merged.get("timezone") or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = ["Not a known time zone (use names like Europe/Berlin)."]
    if errors:
        raise ValidationError(errors)
    template = merged["template"]
    if "limit" in fields or "template" in fields:
        # A limit is names or patterns; one that keeps none of the template's targets today is refused
        # now rather than failing every run (the inventory may still move: a run then fails, recorded).
        fields["limit"] = ", ".join(limits.parse(merged.get("limit") or ""))
        if fields["limit"]:
            limits.narrow(target_kinds.resolve(template.selector, template.environment), fields["limit"])
    secret_values = fields.pop("secret_values", None) or {}
    if not isinstance(secret_values, dict):
        raise ValidationError({"secret_values": ["Give the secret values as an object."]})
    if "params" in fields or "template" in fields or secret_values or instance is None:
        names = {d["name"] for d in template.parameters}
        # Secrets already stored stay unless given again (an empty value removes one): they are
        # never shown, so a client cannot send them back.
        stored = {k: v for k, v in _secrets(instance).items() if k in names} if instance is not None else {}
        public, secret = params.clean_values(template.parameters, {**stored, **(merged.get("params") or {}),
                                                                     **secret_values})
        public, secret = params.split({**public, **secret}, _secret_names(template))
        fields["params"] = public
        fields["secret_params"] = json.dumps(secret) if secret else ""
    return fields


def _secrets(schedule):
    return json.loads(schedule.secret_params) if schedule.secret_params else {}


def _secret_names(template):
    spec = actions.get(template.action)
    return params.secret_names(template.parameters, spec.parameters if spec else [])


def config_hash(schedule, targets):
    """What a standing approval covers: the schedule, its template's version and the targets with
    their fingerprints (secrets as an HMAC)."""
    secret_digest = hmac.new(settings.SECRET_KEY.encode(), (schedule.secret_params or "").encode(),
                             hashlib.sha256).hexdigest()
    data = {"template": schedule.template_id, "template_version": schedule.template.version,
            "params": schedule.params, "secrets": secret_digest, "kind": schedule.kind, "cron": schedule.cron,
            "timezone": schedule.timezone, "interval": schedule.interval_seconds,
            "run_at": schedule.run_at.isoformat() if schedule.run_at else None, "limit": schedule.limit,
            "targets": plan_targets(targets)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _targets(schedule):
    template = schedule.template
    return limits.narrow(target_kinds.resolve(template.selector, template.environment), schedule.limit or None)


def _sync_beat(schedule):
    task = schedule.periodic_task or PeriodicTask(name=f"job schedule {schedule.pk}", task="jobs.run_schedule")
    task.args = json.dumps([schedule.pk])
    task.enabled = schedule.enabled
    task.crontab = task.interval = task.clocked = None
    task.one_off = False
    if schedule.kind == "cron":
        minute, hour, day_of_month, month, day_of_week = schedule.cron.split()
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week,
            timezone=zoneinfo.ZoneInfo(schedule.timezone))
    elif schedule.kind == "interval":
        task.interval, _ = IntervalSchedule.objects.get_or_create(every=schedule.interval_seconds,
                                                                  period=IntervalSchedule.SECONDS)
    else:
        task.clocked, _ = ClockedSchedule.objects.get_or_create(clocked_time=schedule.run_at)
        task.one_off = True
    task.save()
    if schedule.periodic_task_id != task.pk:
        JobSchedule.objects.filter(pk=schedule.pk).update(periodic_task=task)
        schedule.periodic_task = task


def _standing_approval(actor, schedule, targets=None, reason="the schedule or its template changed"):
    """Ask for (or keep) the schedule's standing approval when a policy wants one."""
    template = schedule.template
    spec = actions.get(template.action)
    targets = _targets(schedule) if targets is None else targets
    target_count = len(targets)
    requirement = approvals.evaluate(template.environment, template=template.name, action=spec.name,
                                     risks=spec.risk_tags({**schedule.params, **_secrets(schedule)}, target_count),
                                     target_count=target_count)
    new_hash = config_hash(schedule, targets)
    current = schedule.standing_request
    if current is not None and current.plan_hash != new_hash:
        approvals.invalidate(actor, current, reason)
        current = None
    if requirement is None or requirement.schedule_mode == ScheduleMode.PER_RUN:
        schedule.standing_request = current
    elif current is None or current.state not in (RequestState.PENDING, RequestState.APPROVED):
        schedule.standing_request = approvals.open_request(
            actor, environment=template.environment, subject_type="schedule", subject_id=schedule.pk,
            title=f"Schedule {schedule.name}: {template.name} ({schedule.kind} {schedule.cron or ''})".strip(),
            plan={"schedule": schedule.name, "template": template.name, "template_version": template.version,
                  "kind": schedule.kind, "cron": schedule.cron, "timezone": schedule.timezone,
                  "interval_seconds": schedule.interval_seconds, "params": schedule.params,
                  "action": template.action, "selector": template.selector, "target_count": target_count,
                  "targets": [{"name": t["name"], "fingerprint": t["fingerprint"]} for t in targets[:500]]},
            plan_hash=new_hash, requirement=requirement)
    schedule.config_hash = new_hash
    JobSchedule.objects.filter(pk=schedule.pk).update(standing_request=schedule.standing_request,
                                                      config_hash=new_hash)


def _lock_template(*template_ids):
    """Lock templates (in id order) before any schedule row: the one lock order."""
    ids = sorted({pk for pk in template_ids if pk is not None})
    list(JobTemplate.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))


def create_schedule(actor, *, secret_values=None, **fields):
    with transaction.atomic():
        template = fields.get("template")
        _lock_template(getattr(template, "pk", None))
        fields = _validate({**fields, "secret_values": secret_values or {}})
        fields.setdefault("owner_id", actor.user_id)
        fields.setdefault("owner_name", actor.username)
        fields["updated_by_id"] = actor.user_id
        schedule = create_object(actor, JobSchedule, fields)
        _sync_beat(schedule)
        _standing_approval(actor, schedule)
    return schedule


def update_schedule(actor, schedule, *, secret_values=None, **fields):
    with transaction.atomic():
        _lock_template(schedule.template_id, getattr(fields.get("template"), "pk", None))
        schedule = JobSchedule.objects.select_related("template").get(pk=schedule.pk)
        if secret_values:
            fields["secret_values"] = secret_values
        fields = _validate(fields, schedule)
        fields["updated_by_id"] = actor.user_id  # runs need this editor's authority too (local targets)
        schedule = update_object(actor, schedule, fields)
        _sync_beat(schedule)
        _standing_approval(actor, schedule)
    return schedule


def delete_schedule(actor, schedule):
    with transaction.atomic():
        _lock_template(schedule.template_id)
        task = schedule.periodic_task
        delete_object(actor, schedule)
        if task is not None:
            task.delete()


def refresh_for_template(actor, template):
    """A template changed (its row is locked): values it now types secret move to the encrypted
    store; schedules with standing approvals must be approved again."""
    names = _secret_names(template)
    targets = target_kinds.resolve(template.selector, template.environment)
    for schedule in template.schedules.select_for_update(of=("self",)).select_related("standing_request",
                                                                                       "template"):
        moved = sorted(set(schedule.params) & names)
        if moved:
            secret = {**_secrets(schedule), **{k: schedule.params[k] for k in moved}}
            schedule.params = {k: v for k, v in schedule.params.items() if k not in names}
            schedule.secret_params = json.dumps(secret)
            schedule.save(update_fields=["params", "secret_params"])
            record(actor, "jobschedule.secrets_moved", schedule, after={"params": schedule.params,
                                                                        "secret_names": sorted(secret)})
        _standing_approval(actor, schedule, targets)


def _tz(schedule):
    return zoneinfo.ZoneInfo(schedule.timezone)


def previous_slot(schedule, now):
    """The nominal fire time this run belongs to, to the minute."""
    if schedule.kind == "interval":
        anchor = schedule.created.timestamp()
        slots = int((now.timestamp() - anchor) // schedule.interval_seconds)
        return datetime.datetime.fromtimestamp(anchor + slots * schedule.interval_seconds,
                                               tz=datetime.UTC).replace(second=0, microsecond=0)
    if schedule.kind == "once":
        return schedule.run_at.replace(second=0, microsecond=0)
    return now.replace(second=0, microsecond=0)


def next_run(schedule, now=None):
    """When the schedule fires next (None when it will not)."""
    now = now or timezone.now()
    if not schedule.enabled:
        return None
    if schedule.kind == "once":
        return schedule.run_at if schedule.run_at > now and not schedule.last_run_at else None
    if schedule.kind == "interval":
        last = schedule.last_run_at or schedule.created
        return max(now, last + timedelta(seconds=schedule.interval_seconds))
    task = schedule.periodic_task
    crontab = task.crontab.schedule if task and task.crontab else None
    if crontab is None:
        return None
    local_now = now.astimezone(_tz(schedule))
    estimate = local_now + crontab.remaining_estimate(local_now)
    # Celery estimates from the current second; cron fires on whole minutes.
    return _round_minute(estimate).astimezone(datetime.UTC)


def _round_minute(value):
    return (value + timedelta(seconds=30)).replace(second=0, microsecond=0)


def _expected_fire(schedule):
    """When the run after the previous one was due (to tell a missed run from an on-time one)."""
    if schedule.last_run_at is None:
        return None
    if schedule.kind == "interval":
        return schedule.last_run_at + timedelta(seconds=schedule.interval_seconds)
    if schedule.kind == "cron" and schedule.periodic_task and schedule.periodic_task.crontab:
        crontab = schedule.periodic_task.crontab.schedule
        last = schedule.last_run_at.astimezone(_tz(schedule))
        return _round_minute(last + crontab.remaining_estimate(last))
    return None


def fire(schedule_id, now=None):
    """Run one firing of a schedule. Returns the ScheduleRun (or None for a duplicate firing)."""
    now = now or timezone.now()
    with transaction.atomic():
        schedule = _lock_schedule(schedule_id)
        if schedule is None:
            return None
        slot = previous_slot(schedule, now)
        try:
            with transaction.atomic():
                run = ScheduleRun.objects.create(schedule=schedule, slot=slot, outcome="firing")
        except IntegrityError:
            return None  # this slot already ran (beat restarted or fired twice)
        expected = _expected_fire(schedule)
        late = expected is not None and now - expected > LATE_GRACE
        schedule.last_run_at = now
        JobSchedule.objects.filter(pk=schedule.pk).update(last_run_at=now)
        request_id = f"schedule-{schedule.pk}-{slot:%Y%m%d%H%M}"
        actor = Actor(schedule.owner_id, schedule.owner_name, Source.SCHEDULE, request_id)
        outcome, detail, job = _launch(actor, schedule, late)
        run.outcome, run.detail, run.job = outcome, detail[:500], job
        run.save(update_fields=["outcome", "detail", "job"])
        return run


def _lock_schedule(schedule_id):
    """The schedule row, locked after its template's row (the one lock order)."""
    for _ in range(3):
        template_id = JobSchedule.objects.filter(pk=schedule_id).values_list("template_id", flat=True).first()
        if template_id is None:
            return None
        _lock_template(template_id)
        schedule = (JobSchedule.objects.select_for_update(of=("self",))
                    .select_related("template__environment", "standing_request", "periodic_task__crontab", "owner")
                    .filter(pk=schedule_id).first())
        if schedule is None or schedule.template_id == template_id:
            return schedule
    raise RuntimeError(f"schedule {schedule_id} keeps moving between templates")


def _launch(actor, schedule, late):
    if not schedule.enabled or not schedule.template.enabled:
        return "refused", "the schedule or its template is disabled", None
    if late and schedule.missed_policy == "skip":
        return "skipped_missed", "the run was missed (beat was down) and the policy says skip", None
    owner = schedule.owner
    if owner is None or not owner.is_active:
        return "refused", "the schedule's owner is gone or inactive", None
    standing, note = schedule.standing_request, ""
    try:
        targets = _targets(schedule)
    except ValidationError as exc:
        return "failed", "; ".join(exc.messages), None
    if standing is not None and standing.plan_hash != config_hash(schedule, targets):
        was_approved = standing.state == RequestState.APPROVED
        _plan_changed(actor, schedule, standing, targets)
        if not was_approved:
            return "needs_approval", "the targets changed; the standing approval is asked again for them", None
        standing, note = None, ": its targets changed since the standing approval, so this run waits for its own"
    elif standing is not None and standing.state != RequestState.APPROVED:
        return "needs_approval", f"the standing approval is {standing.get_state_display().lower()}", None
    try:
        with transaction.atomic():
            job = launch(actor, schedule.template, {**schedule.params, **_secrets(schedule)},
                                  schedule=schedule, standing_approval=standing, approved_targets=targets,
                                  limit=schedule.limit or None)
    except (ValidationError, PermissionError) as exc:
        return "failed", "; ".join(getattr(exc, "messages", [str(exc)])), None
    except Exception as exc:  # PermissionDenied and friends: record, never crash the beat task
        return "failed", f"{type(exc).__name__}: {exc}", None
    if standing is not None and job.approval_request_id != standing.pk:
        note = ": its targets changed while it launched, so this run waits for its own approval"
    return "launched", f"job #{job.pk} ({job.get_state_display().lower()}){note}", job


def _plan_changed(actor, schedule, standing, targets):
    """The inventory moved under a standing approval: audit it and ask again for the new plan."""
    approved = standing.plan.get("targets")
    now = [{"name": t["name"], "fingerprint": t["fingerprint"]} for t in targets]
    record(actor, "jobschedule.plan_changed", schedule, before={"targets": approved[:200] if approved else None},
           after={"targets": now[:200]}, extra={"standing_request": standing.pk})
    _standing_approval(actor, schedule, targets, reason="the schedule's targets changed")
