"""Project pages: the list, one project with its sync jobs, and "Sync now" (a project.sync job)."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import scope_for
from ops_portal.core.web import actor, attempt, paginate

from . import services
from .manage_views import visible


@login_required
def home(request):
    page = paginate(request, visible(request.user).order_by("environment__name", "name"))
    operate, manage = scope_for(request.user, Action.OPERATE), scope_for(request.user, Action.MANAGE)
    for project in page.object_list:
        project.can_sync = operate.allows(project.environment_id)
    return render(request, "projects/home.html", {"page": page, "can_manage": manage.everywhere})


@login_required
def detail(request, pk):
    project = get_object_or_404(visible(request.user), pk=pk)
    can_sync = scope_for(request.user, Action.OPERATE).allows(project.environment_id)
    return render(request, "projects/detail.html", {
        "project": project, "can_sync": can_sync, "can_manage": scope_for(request.user, Action.MANAGE).everywhere})


@login_required
@require_POST
def sync(request, pk):
    project = get_object_or_404(visible(request.user), pk=pk)
    job = attempt(request, services.launch_sync, actor(request), project)
    if job:
        messages.success(request, f"Sync of {project} launched.")
        return redirect("jobs:detail", job.pk)
    return redirect("projects:detail", pk)
