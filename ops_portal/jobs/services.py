"""Everything that changes jobs, templates and freezes. Each change is audited in its transaction;
state changes happen only in transition()."""
import hashlib
import hmac
import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, require, scope_for
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, snapshot
from ops_portal.core import streams
from ops_portal.core.errors import StateConflict

from . import actions, groups, params, selectors
from . import strategy as strategies
from .choices import FINISHED_STATES, TRANSITIONS, JobState, TargetState
from .models import FreezeWindow, Job, JobTarget, JobTemplate, Lease, MaintenanceWindow

MAX_TARGETS = 5000
User = get_user_model()


# Templates ---------------------------------------------------------------------------------

def _clean_template_fields(fields, instance=None):
    merged = {**({} if instance is None else snapshot(instance)), **fields}
    spec = actions.get(merged.get("action"))
    if spec is None:
        raise ValidationError({"action": [f"Unknown action. Known: {', '.join(actions.all_actions())}."]})
    if "selector" in fields:
        fields["selector"] = selectors.validate(fields["selector"])
    if "strategy" in fields:
        fields["strategy"] = strategies.validate(fields["strategy"])
    if "parameters" in fields:
        params.validate_definitions(fields["parameters"])
    definitions = merged.get("parameters") or []
    fixed = fields.get("action_params", merged.get("action_params")) or {}
    if not isinstance(fixed, dict):
        raise ValidationError({"action_params": ["Give the fixed parameters as an object."]})
    overlap = set(fixed) & {d["name"] for d in definitions}
    if overlap:
        raise ValidationError({"action_params": [f"Also asked at launch: {', '.join(sorted(overlap))}."]})
    action_names = {d["name"] for d in spec.parameters}
    strays = (set(fixed) | {d["name"] for d in definitions}) - action_names
    if strays:
        raise ValidationError({"parameters": [f"{spec.name} has no parameter {n}." for n in sorted(strays)]})
    secret_fixed = [d["name"] for d in spec.parameters if d["type"] == "secret" and d["name"] in fixed]
    if secret_fixed:
        raise ValidationError({"action_params": ["Secrets are asked at launch, not stored in templates."]})
    params.check_given(spec.parameters, fixed, field="action_params")
    return fields


def create_template(actor, **fields):
    return create_object(actor, JobTemplate, {**_clean_template_fields(dict(fields)), "updated_by_id": actor.user_id})


def update_template(actor, template, **fields):
    from .schedules import refresh_for_template

    with transaction.atomic():
        fields = _clean_template_fields(dict(fields), template)
        fields["version"] = template.version + 1
        fields["updated_by_id"] = actor.user_id
        template = update_object(actor, template, fields)
        refresh_for_template(actor, template)
    return template


def delete_template(actor, template):
    with transaction.atomic():
        # The template row first: deleting cascades to its schedules (see schedules: lock order).
        template = JobTemplate.objects.select_for_update().get(pk=template.pk)
        delete_object(actor, template)


# Launching ---------------------------------------------------------------------------------

def _plan_hash(environment, action, public, secret, targets, strategy, timeouts, template_version=None):
    secret_digests = {name: hmac.new(settings.SECRET_KEY.encode(), str(value).encode(), hashlib.sha256).hexdigest()
                      for name, value in secret.items()}
    plan = {"environment": environment.pk, "action": action, "params": public, "secrets": secret_digests,
            "targets": _plan_targets(targets), "strategy": strategy,
            "timeouts": timeouts, "template_version": template_version}
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def _check_launch(actor, environment, *, emergency, emergency_reason):
    user = actor.user
    if user is not None:
        require(user, Action.OPERATE, environment)
        if emergency and not can(user, Action.MANAGE, environment):
            raise PermissionDenied("Only administrators mark a job as an emergency.")
    if emergency and not emergency_reason.strip():
        raise ValidationError({"emergency_reason": ["Say why this job must run during a freeze."]})


def _check_local_targets(actor, targets, template=None, schedule=None):
    """The portal's own machine holds the portal's secrets: only administrators of all environments
    (and the portal itself) may run work there, and that is asked of everyone who shaped the plan:
    the launcher (a schedule's owner) and the last editors of the template and the schedule."""
    if not settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN:
        return
    local = [t["name"] for t in targets if t["fingerprint"].get("transport") == "local"]
    if not local:
        return
    shapers = [("the launcher", actor.user_id), ("the template's last editor", template and template.updated_by_id),
               ("the schedule's last editor", schedule and schedule.updated_by_id)]
    for who, user_id in shapers:
        if user_id and not scope_for(User.objects.filter(pk=user_id).first(), Action.MANAGE, fresh=True).everywhere:
            raise PermissionDenied(f"Only administrators of all environments act on the portal's own machine "
                                   f"({', '.join(local[:5])}); {who} is not one.")


def _create_job(actor, *, environment, spec, public, secret, targets, strategy, name, template=None,
                timeout_seconds=3600, target_timeout_seconds=None, queue="default", emergency=False,
                emergency_reason="", not_before=None, relaunch_of=None, schedule=None, standing_approval=None):
    if not targets:
        raise ValidationError({"selector": ["The selector matches no enabled target in this environment."]})
    _check_local_targets(actor, targets, template, schedule)
    if len(targets) > MAX_TARGETS:
        raise ValidationError({"selector": [f"At most {MAX_TARGETS} targets per job."]})
    timeouts = {"job": timeout_seconds, "target": target_timeout_seconds}
    now = timezone.now()
    job = Job(
        template=template, template_version=template.version if template else None, name=name[:200],
        environment=environment, action=spec.name, state=JobState.QUEUED, params=params.redacted(public, secret),
        secret_params=json.dumps(secret) if secret else "", strategy=strategy, timeout_seconds=timeout_seconds,
        target_timeout_seconds=target_timeout_seconds,
        plan_hash=_plan_hash(environment, spec.name, public, secret, targets, strategy, timeouts,
                             template.version if template else None), queue=queue,
        emergency=emergency, emergency_reason=emergency_reason, not_before=not_before,
        created_by_id=actor.user_id, created_by_name=actor.username, source=actor.source,
        request_id=actor.request_id, relaunch_of=relaunch_of, created=now, queued_at=now,
        targets_total=len(targets), schedule=schedule,
    )
    job.full_clean(exclude=["plan_hash"])
    job.save()
    batch_of = {}
    for number, indexes in enumerate(strategies.batches(len(targets), strategy)):
        for index in indexes:
            batch_of[index] = number
    JobTarget.objects.bulk_create([
        JobTarget(job=job, index=i, kind=t["kind"], ref_id=t["ref_id"], name=t["name"], fingerprint=t["fingerprint"],
                  batch=batch_of[i])
        for i, t in enumerate(targets)
    ])
    record(actor, "job.relaunch" if relaunch_of else "job.launch", job, after={
        "action": spec.name, "params": job.params, "targets": [t["name"] for t in targets[:200]],
        "target_count": len(targets), "strategy": strategy, "plan_hash": job.plan_hash,
        "template": template.name if template else None, "relaunch_of": relaunch_of.pk if relaunch_of else None,
    })
    if emergency:
        record(actor, "job.emergency", job, extra={"reason": emergency_reason})
    from . import approval

    if standing_approval is not None:
        job.approval_request = standing_approval
        job.save(update_fields=["approval_request"])
    elif approval.gate(actor, job, spec, {**public, **secret}, template):
        _publish_job(job)
        return job
    _publish_job(job)
    _enqueue_on_commit(job)
    return job


def _enqueue_on_commit(job):
    from .tasks import run_job

    transaction.on_commit(lambda: run_job.apply_async((job.pk,), queue=job.queue))


def _plan_targets(targets):
    return [[t["kind"], t["ref_id"], t["fingerprint"]] for t in targets]


def launch(actor, template, values=None, *, emergency=False, emergency_reason="", not_before=None, schedule=None,
           standing_approval=None, approved_targets=None):
    """Launch a job from a template with launch-time parameter values.

    standing_approval covers the run only if the targets resolved now are approved_targets, the
    targets (with fingerprints) the standing approval was given for; otherwise the run asks for
    its own approval.
    """
    with transaction.atomic():
        template = JobTemplate.objects.select_for_update().get(pk=template.pk)
        _check_launch(actor, template.environment, emergency=emergency, emergency_reason=emergency_reason)
        if not template.enabled:
            raise ValidationError({"template": ["This template is disabled."]})
        spec = actions.get(template.action)
        public, secret = params.clean_values(template.parameters, values)
        action_public, action_secret = params.clean_values(spec.parameters, {**template.action_params, **public,
                                                                             **secret})
        # A value is secret when the template or the action types it so: the action's own
        # definitions alone would put a template's secret into the job's public parameters.
        public, secret = params.split({**action_public, **action_secret},
                                      params.secret_names(template.parameters, spec.parameters))
        targets = selectors.resolve(template.selector, template.environment)
        if standing_approval is not None and _plan_targets(targets) != _plan_targets(approved_targets or []):
            standing_approval = None  # the inventory moved since the firing checked it: ask for this run
        return _create_job(
            actor, environment=template.environment, spec=spec, public=public, secret=secret,
            targets=targets, strategy=template.strategy or strategies.validate(None), name=template.name,
            template=template, timeout_seconds=template.timeout_seconds,
            target_timeout_seconds=template.target_timeout_seconds, queue=template.queue, emergency=emergency,
            emergency_reason=emergency_reason, not_before=not_before, schedule=schedule,
            standing_approval=standing_approval,
        )


def launch_adhoc(actor, *, environment, action, values=None, selector=None, strategy=None, name="",
                 timeout_seconds=3600, target_timeout_seconds=None, emergency=False, emergency_reason="",
                 not_before=None, predefined=False):
    """Launch an action without a template (operators and admins, where the environment allows).

    predefined=True: the work was defined by administrators elsewhere (a configuration template) or
    is the portal's own periodic work, so the environment's "no ad-hoc jobs" rule, which is about
    free-form work, does not apply. Permission to operate and approval policies still do.
    """
    with transaction.atomic():
        _check_launch(actor, environment, emergency=emergency, emergency_reason=emergency_reason)
        if not environment.allow_adhoc_jobs and not predefined:
            raise PermissionDenied(f"Ad-hoc jobs are not allowed in {environment}: use a template.")
        spec = actions.get(action)
        if spec is None:
            raise ValidationError({"action": [f"Unknown action. Known: {', '.join(actions.all_actions())}."]})
        public, secret = params.clean_values(spec.parameters, values)
        clean_strategy = strategies.validate(strategy)
        targets = selectors.resolve(selector or {}, environment)
        return _create_job(
            actor, environment=environment, spec=spec, public=public, secret=secret, targets=targets,
            strategy=clean_strategy, name=name or spec.label, timeout_seconds=timeout_seconds,
            target_timeout_seconds=target_timeout_seconds, emergency=emergency, emergency_reason=emergency_reason,
            not_before=not_before,
        )


def relaunch(actor, job):
    """Run a finished job's plan again: same action, parameters and targets.

    Secret values are re-used from the job's encrypted store, never shown to the relauncher; the
    new job stores them encrypted again and goes through the approval policies like any launch.
    """
    with transaction.atomic():
        _check_launch(actor, job.environment, emergency=False, emergency_reason="")
        if job.state not in FINISHED_STATES:
            raise ValidationError({"state": ["Only a finished job can be launched again."]})
        spec = actions.get(job.action)
        secret = json.loads(job.secret_params) if job.secret_params else {}
        public = {k: v for k, v in job.params.items() if k not in secret}
        lost = sorted(name for name, value in public.items() if value == params.SECRET_MARK)
        if lost:
            raise ValidationError({"params": [f"The secret values of {', '.join(lost)} are not stored: launch the "
                                              f"template again and give them."]})
        from ops_portal.inventory.models import Host

        wanted = list(job.targets.order_by("index").values_list("ref_id", flat=True))
        hosts = {h.pk: h for h in Host.objects.filter(pk__in=wanted, environment=job.environment, enabled=True)}
        missing = [t.name for t in job.targets.all() if t.ref_id not in hosts]
        if missing:
            raise ValidationError({"targets": [f"No longer available: {', '.join(missing[:20])}."]})
        targets = [{"kind": "host", "ref_id": pk, "name": hosts[pk].name,
                    "fingerprint": selectors.host_fingerprint(hosts[pk])} for pk in wanted]
        return _create_job(
            actor, environment=job.environment, spec=spec, public=public, secret=secret, targets=targets,
            strategy=job.strategy, name=job.name, template=job.template, timeout_seconds=job.timeout_seconds,
            target_timeout_seconds=job.target_timeout_seconds, queue=job.queue, relaunch_of=job,
        )


# State -------------------------------------------------------------------------------------

class InvalidTransition(StateConflict):
    pass


def transition(actor, job, new_state, **fields):
    """Move a job to new_state (checked against TRANSITIONS), audited, published on commit.

    Call inside a transaction with the job row locked (select_for_update).
    """
    allowed = TRANSITIONS.get(job.state, set())
    if new_state not in allowed:
        raise InvalidTransition({"state": [f"A {job.get_state_display().lower()} job cannot become {new_state}."]})
    before = job.state
    now = timezone.now()
    job.state = new_state
    if new_state == JobState.RUNNING:
        job.started = now
        job.heartbeat = now
        job.waiting_reason = ""
    if new_state == JobState.QUEUED:
        job.queued_at = now
    if new_state in FINISHED_STATES:
        job.finished = now
        job.waiting_reason = ""
    for name, value in fields.items():
        setattr(job, name, value)
    job.save()
    if new_state in FINISHED_STATES:
        Lease.objects.filter(job=job).delete()
    record(actor, f"job.{new_state}", job, before={"state": before},
           after={"state": new_state, **{k: v for k, v in fields.items() if k in ("error", "worker")}})
    _publish_job(job)
    if new_state in FINISHED_STATES:
        _notify_finished(job)
    return job


NOTIFY_EVENTS = {JobState.SUCCEEDED: "job.succeeded", JobState.FAILED: "job.failed",
                 JobState.TIMED_OUT: "job.failed", JobState.LOST: "job.failed"}


def _notify_finished(job):
    """Webhooks and email for the finished job, delivered after commit (and retried)."""
    from django.conf import settings

    from ops_portal.notifications.services import notify

    notify(NOTIFY_EVENTS.get(job.state, "job.finished"), environment=job.environment_id,
           subject=f"Job #{job.pk} {job.name}: {job.get_state_display().lower()}",
           payload={**job_summary(job), "error": job.error[:2000], "url": f"{settings.PORTAL_URL}/jobs/{job.pk}/"},
           dedupe_key=f"job-{job.pk}-{job.state}")


def job_summary(job):
    return {
        "kind": "job", "id": job.pk, "name": job.name, "state": job.state, "environment": job.environment_id,
        "action": job.action, "targets_total": job.targets_total, "targets_done": job.targets_done,
        "targets_failed": job.targets_failed, "waiting_reason": job.waiting_reason,
        "cancel_requested": bool(job.cancel_requested), "created_by": job.created_by_name,
        "started": job.started.isoformat() if job.started else None,
        "finished": job.finished.isoformat() if job.finished else None,
    }


def _publish_job(job):
    """Tell the jobs list and the targets' object streams about the job (after commit)."""
    summary = job_summary(job)
    target_refs = list(job.targets.values_list("kind", "ref_id")[:500]) if job.pk else []

    def send():
        streams.publish(groups.jobs_in(job.environment_id), summary)
        for kind, ref_id in target_refs:
            streams.publish(groups.object_jobs(kind, ref_id, job.environment_id), summary)

    transaction.on_commit(send)


def request_cancel(actor, job):
    """Cancel a job. Queued or waiting jobs end now; a running job ends once its worker confirms
    every remote process group is gone."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if actor.user is not None:
            require(actor.user, Action.OPERATE, job.environment)
        if job.state in FINISHED_STATES:
            raise StateConflict({"state": [f"The job already ended ({job.get_state_display().lower()})."]})
        if job.cancel_requested:
            return job
        job.cancel_requested = timezone.now()
        job.cancel_requested_by = actor.username
        job.save(update_fields=["cancel_requested", "cancel_requested_by"])
        record(actor, "job.cancel_requested", job)
        if job.state in (JobState.QUEUED, JobState.PENDING_APPROVAL):
            if job.state == JobState.PENDING_APPROVAL and job.approval_request_id:
                from ops_portal.approvals.services import withdraw

                withdraw(actor, job.approval_request, f"job canceled by {actor.username or 'the system'}")
            JobTarget.objects.filter(job=job).update(state=TargetState.CANCELED)
            transition(actor, job, JobState.CANCELED)
        else:
            _publish_job(job)
    return job


# Freezes -----------------------------------------------------------------------------------

def create_freeze(actor, **fields):
    return create_object(actor, FreezeWindow, fields)


def delete_freeze(actor, freeze):
    delete_object(actor, freeze)


def active_freeze(environment, at=None):
    at = at or timezone.now()
    return FreezeWindow.objects.filter(environment=environment, starts__lte=at, ends__gt=at).order_by("ends").last()


# Maintenance windows -----------------------------------------------------------------------

def create_window(actor, **fields):
    return create_object(actor, MaintenanceWindow, fields)


def update_window(actor, window, **fields):
    return update_object(actor, window, fields)


def delete_window(actor, window):
    delete_object(actor, window)


def next_window_start(environment, after=None):
    """When the environment's next maintenance window opens (now, if one is open); None if none."""
    after = after or timezone.now()
    openings = [w.open_at(after) for w in MaintenanceWindow.objects.filter(environment=environment)]
    starts = [max(start, after) for start, _ in filter(None, openings)]
    return min(starts) if starts else None


def hold_for_window(environment):
    start = next_window_start(environment)
    if start is None:
        raise ValidationError({"in_window": [f"{environment} has no maintenance window."]})
    return start


# Built-in periodic tasks -------------------------------------------------------------------

MAX_BUILTIN_INTERVAL = 366 * 86400  # the interval's column is a 32-bit integer


def update_builtin(actor, task, *, enabled=None, every_seconds=None):
    """Change a built-in periodic task's interval or switch it off (administrators of all
    environments)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if actor.user is not None:
        require(actor.user, Action.MANAGE, None)
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().get(pk=task.pk)
        before = {"enabled": task.enabled, "every_seconds": task.interval.every if task.interval else None}
        if enabled is not None:
            task.enabled = enabled
        if every_seconds is not None:
            if not 5 <= every_seconds <= MAX_BUILTIN_INTERVAL:
                raise ValidationError({"every_seconds": [f"From 5 to {MAX_BUILTIN_INTERVAL} seconds (a year)."]})
            task.interval, _ = IntervalSchedule.objects.get_or_create(every=every_seconds,
                                                                      period=IntervalSchedule.SECONDS)
        task.save()
        after = {"enabled": task.enabled, "every_seconds": task.interval.every if task.interval else None}
        record(actor, "systemschedule.update", object_type="django_celery_beat.periodictask", object_id=task.pk,
               object_repr=task.name, before=before, after=after)
    return task
