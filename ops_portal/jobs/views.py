import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_celery_beat.models import PeriodicTask

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, has_any, restrict, scope_for
from ops_portal.approvals.models import ApprovalRequest
from ops_portal.core import periodic
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.inventory.models import Host, HostGroup

from . import actions, dry_runs, launch, live, schedules, slices, system, windows
from . import preview as previews
from .choices import ACTIVE_STATES, FINISHED_STATES, JobState
from .filtersets import JobFilterSet
from .forms import LIMIT_FIELD, LaunchForm, ScheduleForm
from .launch_forms import PICKER_KEYS, AdhocForm
from .models import Job, JobSchedule, JobTemplate


@login_required
def job_list(request):
    queryset = restrict(Job.objects.select_related("environment"), request.user, Action.VIEW)
    data = request.GET.copy()
    data.setdefault("system", "false")  # the portal's own periodic jobs only when asked for
    if data["system"] == "any":  # people's and the portal's own (an object page's "all its jobs")
        data.pop("system")
    filterset = JobFilterSet(data, queryset=queryset)
    page = paginate(request, filterset.qs if filterset.is_valid() else queryset.none())
    page.object_list = live.attach_counts(page.object_list)
    params = request.GET.copy()
    params.pop("page", None)
    return render(request, "jobs/list.html", {"page": page, "filterset": filterset, "states": JobState.choices,
                                              "query": params.urlencode(),
                                              "can_launch": has_any(request.user, Action.OPERATE)})


def _visible_job(request, pk):
    return get_object_or_404(restrict(Job.objects.select_related("environment", "template"), request.user,
                                      Action.VIEW), pk=pk)


def _live_context(request, job):
    """What the part of the job page that changes shows: state, buttons, why it waits, counts,
    timings and approvals."""
    approvals = list(_approval_history(job))
    return {
        "job": job,
        "can_operate": can(request.user, Action.OPERATE, job.environment),
        "active": job.state in ACTIVE_STATES,
        "finished": job.state in FINISHED_STATES,
        "spec": actions.get(job.action),
        "approvals": approvals,
        "counts": live.target_counts(job),
        "waiting": live.why_waiting(job, approvals),
        "duration": live.duration(job),
        "slices": slices.table(job),
    }


@login_required
def job_detail(request, pk):
    job = _visible_job(request, pk)
    targets = list(job.targets.order_by("index"))
    # Puppet runs report resource counts per target (data.resources): shown as a grid of their own.
    resources = [t for t in targets if isinstance(t.data, dict) and isinstance(t.data.get("resources"), dict)]
    context = {**_live_context(request, job), "targets": targets, "resource_rows": resources}
    return render(request, "jobs/detail.html", context)


@login_required
def job_live(request, pk):
    """The job page's changing part alone, swapped in by htmx when a stream says the job changed."""
    job = _visible_job(request, pk)
    return render(request, "jobs/_live_update.html", _live_context(request, job))


def _approval_history(job):
    """Every approval request of this job (re-approvals included), with decisions and comments."""
    return (ApprovalRequest.objects.filter(subject_type="job", subject_id=job.pk)
            .prefetch_related("decisions", "comments", "dry_runs").order_by("created"))


@login_required
@require_POST
def job_cancel(request, pk):
    job = get_object_or_404(restrict(Job.objects.all(), request.user, Action.VIEW), pk=pk)
    attempt(request, launch.request_cancel, actor(request), job, success="Cancel requested.")
    return redirect("jobs:detail", pk=job.pk)


@login_required
@require_POST
def job_relaunch(request, pk):
    job = get_object_or_404(restrict(Job.objects.all(), request.user, Action.VIEW), pk=pk)
    new = attempt(request, launch.relaunch, actor(request), job, success="Launched again.")
    return redirect("jobs:detail", pk=new.pk if new else job.pk)


def _launch_environments(request):
    environments = restrict(Environment.objects.all(), request.user, Action.OPERATE)
    if not environments.exists():
        raise PermissionDenied("You may not launch jobs in any environment.")
    return environments


def _adhoc_form(request, data):
    environments = _launch_environments(request)
    groups = restrict(HostGroup.objects.filter(environment__in=environments), request.user,
                      Action.VIEW).values_list("name", "environment_id")
    return AdhocForm(data, environments=environments, groups=list(groups))


def _show_errors(form, exc, renamed):
    """Put a service's ValidationError on the form's fields (`renamed`: its keys → field names)."""
    for key, messages_ in (exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]):
        field = renamed.get(key, key)
        for message in messages_:
            form.add_error(field if field in form.fields else None, message)


def _preview(request, form, renamed, *args, **kwargs):
    """The launch preview, or None with the reasons shown on the form (a list of them when the
    form is None: a first view, before anything was submitted)."""
    try:
        return previews.preview(actor(request), *args, **kwargs)
    except ValidationError as exc:
        if form is None:
            return exc.messages
        _show_errors(form, exc, renamed)
    except PermissionDenied as exc:
        if form is None:
            return [str(exc) or "You may not do that."]
        form.add_error(None, str(exc) or "You may not do that.")
    return None


def _confirmed(request, preview):
    """Destructive or multi-target work runs only when the confirmation names today's count."""
    return not preview.needs_confirmation or request.POST.get("confirm_count") == str(preview.count)


def _preview_context(request, preview, step):
    if preview is None:
        return {}
    return {"preview": preview, "preview_params": json.dumps(preview.params, indent=2, sort_keys=True, default=str),
            "confirm_missing": request.method == "POST" and step == "launch" and not _confirmed(request, preview)}


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request):
    form = _adhoc_form(request, request.POST or None)
    preview = None
    step = request.POST.get("step", "launch")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        renamed = {"selector": "selector" if data.get("selector") is not None else "target_all",
                   "strategy": "strategy" if data.get("strategy") is not None else "strategy_kind",
                   "parameters": None}
        preview = _preview(request, form, renamed, data["environment"], actions.get(data["action"]),
                           selector=form.chosen_selector(), strategy=form.chosen_strategy(),
                           values=form.action_values())
        if preview and step == "launch" and _confirmed(request, preview):
            not_before = None
            if data["in_window"]:
                not_before = attempt(request, windows.hold_for_window, data["environment"])
            if not data["in_window"] or not_before:
                job = attempt(request, launch.launch_adhoc, actor(request), environment=data["environment"],
                              action=data["action"], values=form.action_values(),
                              selector=form.chosen_selector(), strategy=form.chosen_strategy(),
                              not_before=not_before, form=form)
                if job:
                    return redirect("jobs:detail", pk=job.pk)
    return render(request, "jobs/new.html", {"form": form, **_preview_context(request, preview, step)})


@login_required
def job_targets(request):
    """The launch form's live target count: the targets the picker's choice matches now, with the
    first names (htmx fragment). Only environments the user may launch in are resolved."""
    form = _adhoc_form(request, request.GET)
    context = {"count": None, "names": [], "errors": []}
    form.is_valid()
    environment = form.cleaned_data.get("environment")
    picker_errors = [error for name in ("environment", "selector", *PICKER_KEYS, "target_all")
                     for error in form.errors.get(name, [])]
    if environment is None:
        context["errors"] = ["Choose an environment."]
    elif picker_errors:
        context["errors"] = picker_errors
    else:
        try:
            spec = actions.get(form.cleaned_data.get("action") or "")
            context["count"], context["names"], context["excluded"] = previews.matching(
                form.chosen_selector(), environment, spec)
            context["more"] = context["count"] - len(context["names"])
            context["environment"] = environment
        except ValidationError as exc:
            context["errors"] = exc.messages
    return render(request, "jobs/_targets.html", context)


@login_required
@require_POST
def host_run(request, pk, action):
    """Gather facts, run the compliance checks or install Puppet on one host, as a job (from the host's page)."""
    host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=pk)
    if action not in ("host.facts", "host.compliance", "host.install_puppet"):
        return redirect("inventory:host", pk=host.pk)
    job = attempt(request, launch.launch_adhoc, actor(request), environment=host.environment, action=action,
                  values={}, selector={"names": [host.name]})
    return redirect("jobs:detail", pk=job.pk) if job else redirect("inventory:host", pk=host.pk)


@login_required
def template_list(request):
    templates = list(restrict(JobTemplate.objects.select_related("environment"), request.user, Action.VIEW))
    manage = scope_for(request.user, Action.MANAGE)
    for template in templates:
        template.can_manage = manage.allows(template.environment_id)
    return render(request, "jobs/templates.html", {"templates": templates, "can_create": not manage.empty})


@login_required
@require_http_methods(["GET", "POST"])
def template_launch(request, pk):
    template = get_object_or_404(restrict(JobTemplate.objects.select_related("environment"), request.user,
                                          Action.VIEW), pk=pk)
    form = LaunchForm(request.POST or None, template=template)
    can_operate = can(request.user, Action.OPERATE, template.environment)
    step = request.POST.get("step", "launch")
    preview, preview_problems = None, []
    if can_operate and (request.method == "GET" or form.is_valid()):
        values = form.values() if request.method == "POST" else {}
        limit = form.limit() if request.method == "POST" else None
        # On the first view the preview uses the defaults; what is missing is said, not raised.
        preview = _preview(request, form if request.method == "POST" else None,
                           {"parameters": None, "limit": LIMIT_FIELD}, template.environment,
                           actions.get(template.action), selector=template.selector, strategy=template.strategy,
                           values=values, template=template, limit=limit)
        if isinstance(preview, list):
            preview_problems, preview = preview, None
        if request.method == "POST" and preview and step == "launch" and _confirmed(request, preview):
            job = attempt(request, launch.launch, actor(request), template, values, limit=limit, form=form)
            if job:
                messages.success(request, f"Launched job #{job.pk}.")
                return redirect("jobs:detail", pk=job.pk)
    return render(request, "jobs/launch.html", {"template": template, "form": form, "can_operate": can_operate,
                                                "preview_problems": preview_problems,
                                                **_preview_context(request, preview, step)})


@login_required
@require_http_methods(["GET", "POST"])
def schedule_list(request):
    manageable = restrict(JobTemplate.objects.select_related("environment"), request.user, Action.MANAGE)
    form = ScheduleForm(request.POST or None, templates=manageable)
    if request.method == "POST" and form.is_valid():
        if attempt(request, schedules.create_schedule, actor(request), form=form, success="Schedule created.",
                   **form.cleaned_data):
            return redirect("jobs:schedules")
    items = restrict(JobSchedule.objects.select_related("template__environment", "standing_request",
                                                        "periodic_task__crontab"), request.user, Action.VIEW)
    rows = [{"schedule": s, "next_run": schedules.next_run(s), "last": s.runs.first(),
             "can_manage": can(request.user, Action.MANAGE, s.template.environment)} for s in items]
    builtin_tasks = None
    if scope_for(request.user, Action.VIEW).everywhere:
        builtin_tasks = PeriodicTask.objects.filter(name__in=list(periodic.builtins())).select_related("interval")
    return render(request, "jobs/schedules.html", {"rows": rows, "form": form if manageable.exists() else None,
                                                   "system": builtin_tasks,
                                                   "global_admin": scope_for(request.user, Action.MANAGE).everywhere})


@login_required
@require_POST
def schedule_toggle(request, pk):
    schedule = get_object_or_404(restrict(JobSchedule.objects.all(), request.user, Action.VIEW), pk=pk)
    attempt(request, schedules.update_schedule, actor(request), schedule, enabled=not schedule.enabled,
            success=f"Schedule {'paused' if schedule.enabled else 'resumed'}.")
    return redirect("jobs:schedules")


@login_required
@require_POST
def system_schedule_update(request, pk):
    task = get_object_or_404(PeriodicTask.objects.filter(name__in=list(periodic.builtins())), pk=pk)
    try:
        every = int(request.POST.get("every_seconds", ""))
    except ValueError:
        messages.error(request, "Give the interval in whole seconds.")
        return redirect("jobs:schedules")
    attempt(request, system.update_builtin, actor(request), task, every_seconds=every,
            enabled=request.POST.get("enabled") == "on", success=f"{task.name} updated.")
    return redirect("jobs:schedules")


@login_required
def dry_run_panel(request, pk):
    """The dry run part of an approval request's page, polled by htmx while the dry run runs."""
    approval = get_object_or_404(restrict(ApprovalRequest.objects.select_related("environment"), request.user,
                                          Action.VIEW), pk=pk, subject_type="job")
    return render(request, "jobs/_dry_run.html", dry_runs.panel_context(approval))
