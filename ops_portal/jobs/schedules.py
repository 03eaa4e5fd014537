"""Schedules: launch templates on a clock through django-celery-beat's database scheduler.

Each JobSchedule owns one PeriodicTask calling jobs.run_schedule(schedule_id). A run takes a slot
(the nominal fire time, to the minute) that is unique per schedule, so a beat that restarts and
fires again does not launch twice. Gated templates need either a standing approval of the
schedule (re-approved when the schedule or the template changes) or an approval per run.
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
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import actions, params, selectors
from .models import JobSchedule, ScheduleRun

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
    if "params" in fields or instance is None:
        public, secret = params.clean_values(template.parameters, {**(merged.get("params") or {}),
                                                                     **fields.pop("secret_values", {})})
        fields["params"] = public
        fields["secret_params"] = json.dumps(secret) if secret else ""
    return fields


def config_hash(schedule):
    secret_digest = hmac.new(settings.SECRET_KEY.encode(), (schedule.secret_params or "").encode(),
                             hashlib.sha256).hexdigest()
    data = {"template": schedule.template_id, "template_version": schedule.template.version,
            "params": schedule.params, "secrets": secret_digest, "kind": schedule.kind, "cron": schedule.cron,
            "timezone": schedule.timezone, "interval": schedule.interval_seconds,
            "run_at": schedule.run_at.isoformat() if schedule.run_at else None}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


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


def _standing_approval(actor, schedule):
    """Ask for (or keep) the schedule's standing approval when a policy wants one."""
    template = schedule.template
    spec = actions.get(template.action)
    target_count = len(selectors.resolve(template.selector, template.environment))
    requirement = approvals.evaluate(template.environment, template=template.name, action=spec.name,
                                     risks=spec.risks(schedule.params, target_count), target_count=target_count)
    new_hash = config_hash(schedule)
    current = schedule.standing_request
    if current is not None and current.plan_hash != new_hash:
        approvals.invalidate(actor, current, "the schedule or its template changed")
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
                  "action": template.action, "selector": template.selector, "target_count": target_count},
            plan_hash=new_hash, requirement=requirement)
    schedule.config_hash = new_hash
    JobSchedule.objects.filter(pk=schedule.pk).update(standing_request=schedule.standing_request,
                                                      config_hash=new_hash)


def create_schedule(actor, *, secret_values=None, **fields):
    with transaction.atomic():
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
        if secret_values:
            fields["secret_values"] = secret_values
            fields.setdefault("params", schedule.params)
        fields = _validate(fields, schedule)
        fields["updated_by_id"] = actor.user_id  # runs need this editor's authority too (local targets)
        schedule = update_object(actor, schedule, fields)
        _sync_beat(schedule)
        _standing_approval(actor, schedule)
    return schedule


def delete_schedule(actor, schedule):
    with transaction.atomic():
        task = schedule.periodic_task
        delete_object(actor, schedule)
        if task is not None:
            task.delete()


def refresh_for_template(actor, template):
    """A template changed: schedules with standing approvals must be approved again."""
    for schedule in template.schedules.select_related("standing_request", "template"):
        _standing_approval(actor, schedule)


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
    from . import services

    now = now or timezone.now()
    with transaction.atomic():
        schedule = (JobSchedule.objects.select_for_update(of=("self",))
                    .select_related("template__environment", "standing_request", "periodic_task__crontab", "owner")
                    .filter(pk=schedule_id).first())
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
        outcome, detail, job = _launch(actor, schedule, late, services)
        run.outcome, run.detail, run.job = outcome, detail[:500], job
        run.save(update_fields=["outcome", "detail", "job"])
        return run


def _launch(actor, schedule, late, services):
    if not schedule.enabled or not schedule.template.enabled:
        return "refused", "the schedule or its template is disabled", None
    if late and schedule.missed_policy == "skip":
        return "skipped_missed", "the run was missed (beat was down) and the policy says skip", None
    owner = schedule.owner
    if owner is None or not owner.is_active:
        return "refused", "the schedule's owner is gone or inactive", None
    standing = schedule.standing_request
    if standing is not None:
        if standing.state != RequestState.APPROVED or standing.plan_hash != config_hash(schedule):
            return "needs_approval", f"the standing approval is {standing.get_state_display().lower()}", None
    secret = json.loads(schedule.secret_params) if schedule.secret_params else {}
    try:
        with transaction.atomic():
            job = services.launch(actor, schedule.template, {**schedule.params, **secret},
                                  schedule=schedule, standing_approval=standing)
    except (ValidationError, PermissionError) as exc:
        return "failed", "; ".join(getattr(exc, "messages", [str(exc)])), None
    except Exception as exc:  # PermissionDenied and friends: record, never crash the beat task
        return "failed", f"{type(exc).__name__}: {exc}", None
    return "launched", f"job #{job.pk} ({job.get_state_display().lower()})", job
