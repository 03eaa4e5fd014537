"""Starting and stopping jobs: launch from a template, ad hoc, again (relaunch), and cancel.

A launch freezes the plan (action, parameters, resolved targets with fingerprints, strategy,
timeouts, plan hash), audits it, asks the approval policies (gating) and queues it on commit.
"""
import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, require, scope_for
from ops_portal.approvals.services import withdraw
from ops_portal.audit.services import record
from ops_portal.core import targets as target_kinds
from ops_portal.core.errors import StateConflict
from ops_portal.inventory.models import site_queue

from . import actions, limits, params, tools
from . import strategy as strategies
from .choices import FINISHED_STATES, WAITING_STATES, JobState, TargetState
from .gating import gate
from .lifecycle import enqueue, plan_hash, plan_targets, publish_job, stored_params, transition
from .models import Job, JobTarget, JobTemplate

MAX_TARGETS = 5000
DEFAULT_QUEUE = "default"
User = get_user_model()


def check_launch(actor, environment, *, emergency, emergency_reason):
    user = actor.user
    if user is not None:
        require(user, Action.OPERATE, environment)
        if emergency and not can(user, Action.MANAGE, environment):
            raise PermissionDenied("Only administrators mark a job as an emergency.")
    if emergency and not emergency_reason.strip():
        raise ValidationError({"emergency_reason": ["Say why this job must run during a freeze."]})


def check_local_targets(actor, targets, template=None, schedule=None):
    """The portal's own machine holds the portal's secrets: only administrators of all environments
    (and the portal itself) may run work there, and that is asked of everyone who shaped the plan:
    the launcher (a schedule's owner) and the last editors of the template and the schedule."""
    if not settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN:
        return
    local = [t["name"] for t in targets if target_kinds.get(t["kind"]).is_local(t)]
    if not local:
        return
    shapers = [("the launcher", actor.user_id), ("the template's last editor", template and template.updated_by_id),
               ("the schedule's last editor", schedule and schedule.updated_by_id)]
    for who, user_id in shapers:
        if user_id and not scope_for(User.objects.filter(pk=user_id).first(), Action.MANAGE, fresh=True).everywhere:
            raise PermissionDenied(f"Only administrators of all environments act on the portal's own machine "
                                   f"({', '.join(local[:5])}); {who} is not one.")


def route(targets, queue=None):
    """The Celery queue a job's plan is frozen with: the queue its template names (anything but
    the default), else its targets' site's queue (`site.<name>`), else the default queue. Targets
    on several sites (or some on none) are refused, naming the sites: a job is never split
    silently (slicing per site is future work)."""
    if queue and queue != DEFAULT_QUEUE:
        return queue
    by_kind = {}
    for target in targets:
        by_kind.setdefault(target["kind"], []).append(target["ref_id"])
    counts = {}
    for kind_name, ref_ids in by_kind.items():
        for site in target_kinds.get(kind_name).sites(ref_ids).values():
            counts[site] = counts.get(site, 0) + 1
    if len(counts) > 1:
        spread = ", ".join(f"{count} on {'no site' if site is None else 'site ' + site}"
                           for site, count in sorted(counts.items(), key=lambda item: (item[0] is None, item[0] or "")))
        raise ValidationError({"selector": [f"The targets span several sites ({spread}): a job runs on one site's "
                                            f"workers, so launch one job per site (narrow the selector)."]})
    site = next(iter(counts), None)
    return DEFAULT_QUEUE if site is None else site_queue(site)


TARGET_COLUMNS = ("job_id", "index", "kind", "ref_id", "name", "fingerprint", "batch", "state", "error")


def _insert_targets(job, targets, batch_of):
    """The job's target rows, pending. On PostgreSQL by COPY: a 5,000-target launch spent 1.6 s of
    its 2.7-3.2 s in bulk_create's per-field preparation and quoting (cProfile, here)."""
    if connection.vendor != "postgresql":
        JobTarget.objects.bulk_create([
            JobTarget(job=job, index=i, kind=t["kind"], ref_id=t["ref_id"], name=t["name"],
                      fingerprint=t["fingerprint"], batch=batch_of[i])
            for i, t in enumerate(targets)
        ])
        return
    table = connection.ops.quote_name(JobTarget._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in TARGET_COLUMNS)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for i, t in enumerate(targets):
                copy.write_row((job.pk, i, t["kind"], t["ref_id"], t["name"], json.dumps(t["fingerprint"]),
                                batch_of[i], TargetState.PENDING, ""))


def create_job(actor, *, environment, spec, public, secret, targets, strategy, name, template=None,
               timeout_seconds=3600, target_timeout_seconds=None, queue=None, emergency=False,
               emergency_reason="", not_before=None, relaunch_of=None, schedule=None, standing_approval=None,
               approval=None, dry_run_for=None):
    """Freeze and store the plan, audit the launch, gate it and queue it (on commit). `approval`: an
    approvals Requirement the launcher adds to the environment's policies (the strictest wins);
    `queue`: one the template names, or None (or "default") to route by the targets' site.
    `dry_run_for`: the approval request this job is the read-only dry run for (jobs.dry_runs): it
    is not gated (it changes nothing; the caller has set the action's dry-run parameter)."""
    if not targets:
        raise ValidationError({"selector": ["The selector matches no enabled target in this environment."]})
    if dry_run_for is not None and not (spec.dry_run_param and public.get(spec.dry_run_param) is True):
        raise ValueError(f"{spec.name}: only a run with its dry-run parameter set skips approval")
    targets, excluded = tools.split(spec, targets)
    tools.refuse_if_none_left(spec, targets, excluded)
    strays = sorted({t["kind"] for t in targets} - {spec.target_kind})
    if strays:
        raise ValidationError({"selector": [f"{spec.name} acts on {spec.target_kind} targets, not on "
                                            f"{', '.join(strays)}."]})
    if actor.user is not None and spec.needs != Action.OPERATE:
        require(actor.user, spec.needs, environment)
    check_local_targets(actor, targets, template, schedule)
    if spec.normalize is not None:
        public = spec.normalize(dict(public))
    if spec.freeze is not None:
        public = spec.freeze(dict(public), environment)
    if len(targets) > MAX_TARGETS:
        raise ValidationError({"selector": [f"At most {MAX_TARGETS} targets per job."]})
    queue = route(targets, queue)
    timeouts = {"job": timeout_seconds, "target": target_timeout_seconds}
    now = timezone.now()
    job = Job(
        template=template, template_version=template.version if template else None, name=name[:200],
        environment=environment, action=spec.name, state=JobState.QUEUED, params=params.redacted(public, secret),
        secret_params=json.dumps(secret) if secret else "", strategy=strategy, timeout_seconds=timeout_seconds,
        target_timeout_seconds=target_timeout_seconds,
        plan_hash=plan_hash(environment, spec.name, public, secret, targets, strategy, timeouts,
                            template.version if template else None), queue=queue,
        emergency=emergency, emergency_reason=emergency_reason, not_before=not_before,
        created_by_id=actor.user_id, created_by_name=actor.username, source=actor.source,
        request_id=actor.request_id, relaunch_of=relaunch_of, created=now, queued_at=now,
        targets_total=len(targets), schedule=schedule, dry_run_for=dry_run_for,
    )
    job.full_clean(exclude=["plan_hash"])
    job.save()
    batch_of = {}
    for number, indexes in enumerate(strategies.batches(len(targets), strategy)):
        for index in indexes:
            batch_of[index] = number
    _insert_targets(job, targets, batch_of)
    record(actor, "job.relaunch" if relaunch_of else "job.launch", job, after={
        "action": spec.name, "params": job.params, "targets": [t["name"] for t in targets[:200]],
        "target_count": len(targets), "strategy": strategy, "plan_hash": job.plan_hash, "queue": queue,
        "template": template.name if template else None, "relaunch_of": relaunch_of.pk if relaunch_of else None,
        **({"excluded": excluded[:200]} if excluded else {}),
        **({"dry_run_for": {"approval": dry_run_for.pk, "job": dry_run_for.subject_id}} if dry_run_for else {}),
    })
    if emergency:
        record(actor, "job.emergency", job, extra={"reason": emergency_reason})
    if standing_approval is not None:
        job.approval_request = standing_approval
        job.save(update_fields=["approval_request"])
    elif dry_run_for is None and gate(actor, job, spec, {**public, **secret}, template, required=approval):
        return job  # waits for approval (gate moved it there, audited and published)
    publish_job(job)
    enqueue(job)
    return job


def template_values(template, spec, values):
    """(public, secret): a template's launch-time values checked against its definitions, merged
    with its fixed action parameters and checked against the action's."""
    public, secret = params.clean_values(template.parameters, values)
    extra = {}
    if spec.extra_parameters:  # the template's own parameters pass to the action as data (extra vars)
        own = {d["name"] for d in spec.parameters}
        extra = {name: value for name, value in {**public, **secret}.items() if name not in own}
        public = {name: value for name, value in public.items() if name in own}
        secret = {name: value for name, value in secret.items() if name in own}
    action_public, action_secret = params.clean_values(spec.parameters, {**template.action_params, **public,
                                                                         **secret})
    action_public.update(extra)
    # A value is secret when the template or the action types it so: the action's own
    # definitions alone would put a template's secret into the job's public parameters.
    return params.split({**action_public, **action_secret}, params.secret_names(template.parameters, spec.parameters))


def launch(actor, template, values=None, *, emergency=False, emergency_reason="", not_before=None, schedule=None,
           standing_approval=None, approved_targets=None, limit=None):
    """Launch a job from a template with launch-time parameter values.

    limit: names or patterns keeping some of the targets the template's selector matches (jobs.limits).

    standing_approval covers the run only if the targets resolved now are approved_targets, the
    targets (with fingerprints) the standing approval was given for; otherwise the run asks for
    its own approval.
    """
    with transaction.atomic():
        template = JobTemplate.objects.select_for_update().get(pk=template.pk)
        check_launch(actor, template.environment, emergency=emergency, emergency_reason=emergency_reason)
        if not template.enabled:
            raise ValidationError({"template": ["This template is disabled."]})
        spec = actions.get(template.action)
        public, secret = template_values(template, spec, values)
        targets = limits.narrow(target_kinds.resolve(template.selector, template.environment), limit)
        if standing_approval is not None and plan_targets(targets) != plan_targets(approved_targets or []):
            standing_approval = None  # the inventory moved since the firing checked it: ask for this run
        return create_job(
            actor, environment=template.environment, spec=spec, public=public, secret=secret,
            targets=targets, strategy=template.strategy or strategies.validate(None), name=template.name,
            template=template, timeout_seconds=template.timeout_seconds,
            target_timeout_seconds=template.target_timeout_seconds, queue=template.queue, emergency=emergency,
            emergency_reason=emergency_reason, not_before=not_before, schedule=schedule,
            standing_approval=standing_approval,
        )


def launch_adhoc(actor, *, environment, action, values=None, selector=None, strategy=None, name="",
                 timeout_seconds=3600, target_timeout_seconds=None, emergency=False, emergency_reason="",
                 not_before=None, predefined=False, approval=None):
    """Launch an action without a template (operators and admins, where the environment allows).

    predefined=True: the work was defined by administrators elsewhere (a configuration template) or
    is the portal's own periodic work, so the environment's "no ad-hoc jobs" rule, which is about
    free-form work, does not apply. Permission to operate and approval policies still do.
    """
    with transaction.atomic():
        check_launch(actor, environment, emergency=emergency, emergency_reason=emergency_reason)
        if not environment.allow_adhoc_jobs and not predefined:
            raise PermissionDenied(f"Ad-hoc jobs are not allowed in {environment}: use a template.")
        spec = actions.get(action)
        if spec is None:
            raise ValidationError({"action": [f"Unknown action. Known: {', '.join(actions.all_actions())}."]})
        public, secret = params.clean_values(spec.parameters, values)
        clean_strategy = strategies.validate(strategy)
        targets = target_kinds.resolve(selector or {}, environment)
        return create_job(
            actor, environment=environment, spec=spec, public=public, secret=secret, targets=targets,
            strategy=clean_strategy, name=name or actions.job_name(spec, public), timeout_seconds=timeout_seconds,
            target_timeout_seconds=target_timeout_seconds, emergency=emergency, emergency_reason=emergency_reason,
            not_before=not_before, approval=approval,
        )


def relaunch(actor, job):
    """Run a finished job's plan again: same action, parameters and targets.

    Secret values are re-used from the job's encrypted store, never shown to the relauncher; the
    new job stores them encrypted again and goes through the approval policies like any launch.
    """
    with transaction.atomic():
        check_launch(actor, job.environment, emergency=False, emergency_reason="")
        if job.state not in FINISHED_STATES:
            raise ValidationError({"state": ["Only a finished job can be launched again."]})
        spec = actions.get(job.action)
        public, secret = stored_params(job)
        lost = sorted(name for name, value in public.items() if value == params.SECRET_MARK)
        if lost:
            raise ValidationError({"params": [f"The secret values of {', '.join(lost)} are not stored: launch the "
                                              f"template again and give them."]})
        wanted = list(job.targets.order_by("index").values_list("kind", "ref_id", "name"))
        found = {}
        for kind_name in {kind_name for kind_name, _, _ in wanted}:
            kind = target_kinds.get(kind_name)
            objects = kind.available([r for k, r, _ in wanted if k == kind_name], job.environment) if kind else {}
            found.update({(kind_name, ref_id): obj for ref_id, obj in objects.items()})
        missing = [name for kind_name, ref_id, name in wanted if (kind_name, ref_id) not in found]
        if missing:
            raise ValidationError({"targets": [f"No longer available: {', '.join(missing[:20])}."]})
        targets = [target_kinds.get(kind_name).entry(found[kind_name, ref_id]) for kind_name, ref_id, _ in wanted]
        return create_job(
            actor, environment=job.environment, spec=spec, public=public, secret=secret, targets=targets,
            strategy=job.strategy, name=job.name, template=job.template, timeout_seconds=job.timeout_seconds,
            target_timeout_seconds=job.target_timeout_seconds, relaunch_of=job,
            queue=job.template.queue if job.template else None,  # re-routed: a host may have moved site
        )


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
        if job.state in WAITING_STATES:
            if job.state == JobState.PENDING_APPROVAL and job.approval_request_id:
                withdraw(actor, job.approval_request, f"job canceled by {actor.username or 'the system'}")
            JobTarget.objects.filter(job=job).update(state=TargetState.CANCELED)
            transition(actor, job, JobState.CANCELED)
        else:
            publish_job(job)
    return job
