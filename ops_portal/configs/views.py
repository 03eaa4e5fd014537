"""Configs pages: templates with their drift, one template's detail with a per-host preview, and
buttons that launch dry runs, applies and drift checks as jobs (then show the job)."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, restrict, scope_for
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.inventory.models import Host

from . import services
from .models import ConfigTemplate, DriftReport

LAUNCHES = {
    "dry_run": (lambda a, config: services.launch_apply(a, config, dry_run=True), "Dry run launched"),
    "apply": (lambda a, config: services.launch_apply(a, config), "Apply launched"),
    "check": (services.launch_check, "Drift check launched"),
}


def _reports(queryset):
    return queryset.select_related("config__environment", "host").order_by(*DriftReport._meta.ordering)


def _operable(user, rows):
    scope = scope_for(user, Action.OPERATE)
    for row in rows:
        environment_id = row.environment_id if isinstance(row, ConfigTemplate) else row.config.environment_id
        row.can_operate = scope.allows(environment_id)
    return rows


@login_required
def home(request):
    templates = list(restrict(ConfigTemplate.objects.select_related("environment"), request.user, Action.VIEW)
                     .annotate(drifted_count=Count("drift_reports", filter=Q(drift_reports__drifted=True)),
                               in_sync_count=Count("drift_reports", filter=Q(drift_reports__drifted=False)),
                               unknown_count=Count("drift_reports", filter=Q(drift_reports__drifted__isnull=True))))
    reports = restrict(DriftReport.objects.all(), request.user, Action.VIEW)
    state = request.GET.get("state", "")
    state = state if state in ("drifted", "unknown") else ""
    if state == "drifted":
        reports = reports.filter(drifted=True)
    elif state == "unknown":
        reports = reports.filter(drifted__isnull=True)
    page = paginate(request, _reports(reports))
    _operable(request.user, templates)
    _operable(request.user, page.object_list)
    manage = scope_for(request.user, Action.MANAGE)
    for template in templates:
        template.can_manage = manage.allows(template.environment_id)
    return render(request, "configs/home.html", {"templates": templates, "page": page, "state": state,
                                                 "can_create": not manage.empty,
                                                 "query": f"state={state}" if state else ""})


@login_required
def detail(request, pk):
    config = get_object_or_404(restrict(ConfigTemplate.objects.select_related("environment"), request.user,
                                        Action.VIEW), pk=pk)
    hosts = restrict(Host.objects.filter(environment=config.environment), request.user, Action.VIEW)
    preview, preview_host = None, None
    can_operate = can(request.user, Action.OPERATE, config.environment_id)
    if request.GET.get("host", "").isdigit() and can_operate:
        preview_host = hosts.select_related("environment").prefetch_related("groups").filter(
            pk=int(request.GET["host"])).first()
        if preview_host is None:
            messages.error(request, "No host with this id that you may see.")
        else:
            preview = attempt(request, services.render_for, request.user, config, preview_host)
    reports = _operable(request.user, list(_reports(config.drift_reports.all())))
    return render(request, "configs/detail.html", {
        "config": config, "reports": reports, "hosts": hosts.order_by("name")[:500],
        "preview": preview if isinstance(preview, dict) else None, "preview_host": preview_host,
        "can_operate": can_operate, "can_manage": can(request.user, Action.MANAGE, config.environment_id),
    })


@login_required
@require_POST
def launch(request, pk):
    config = get_object_or_404(restrict(ConfigTemplate.objects.select_related("environment"), request.user,
                                        Action.VIEW), pk=pk)
    what = LAUNCHES.get(request.POST.get("what", ""))
    if what is None:
        messages.error(request, "Say what to launch: a dry run, an apply or a drift check.")
        return redirect("configs:detail", pk=config.pk)
    func, label = what
    job = attempt(request, func, actor(request), config)
    if job:
        messages.success(request, f"{label}: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    if request.POST.get("back") == "home":
        return redirect("configs:home")
    return redirect("configs:detail", pk=config.pk)


@login_required
@require_POST
def remediate(request, pk):
    report = get_object_or_404(restrict(DriftReport.objects.select_related("config__environment", "host"),
                                        request.user, Action.VIEW), pk=pk)
    job = attempt(request, services.remediate, actor(request), report)
    if job:
        messages.success(request, f"Apply launched on {report.host.name}: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    return redirect("configs:home")
