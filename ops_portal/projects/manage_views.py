"""Project pages: create, edit and delete through services.create_project / update_project /
delete_project, like the API (permission decided before any write, audited)."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict, scope_for
from ops_portal.core.web import confirm_delete, form_page, require_manage

from . import services
from .forms import ProjectForm
from .models import Project

INTRO = ("A source of playbooks or manifests: a Git repository (synced into the portal's var/projects/) or a "
         "directory on the portal's machine. Its files run as code on the portal's machine, so only administrators "
         "of all environments manage projects. A changed source forgets the synced revision.")


def visible(user):
    return restrict(Project.objects.select_related("environment"), user, Action.VIEW)


def _page(request, project=None):
    require_manage(request.user, project)
    if not scope_for(request.user, Action.MANAGE).everywhere:
        raise PermissionDenied("Only administrators of all environments manage projects.")
    form = ProjectForm(request.POST or None, initial=ProjectForm.initial_from(project) if project else {},
                       environments=restrict(Environment.objects.all(), request.user, Action.MANAGE),
                       editing=project is not None)
    save = services.create_project if project is None else services.update_project
    back = reverse("projects:detail", args=[project.pk]) if project is not None else reverse("projects:home")
    return form_page(request, form, save, obj=project, what="project", intro=INTRO, back=back,
                     done=reverse("projects:home"),
                     delete_url=reverse("projects:delete", args=[project.pk]) if project else None)


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request):
    return _page(request)


@login_required
@require_http_methods(["GET", "POST"])
def project_edit(request, pk):
    return _page(request, get_object_or_404(visible(request.user), pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def project_delete(request, pk):
    project = get_object_or_404(visible(request.user), pk=pk)
    return confirm_delete(request, project, services.delete_project, what="project", done=reverse("projects:home"),
                          back=reverse("projects:detail", args=[pk]),
                          consequences=["the portal's copies of its revisions (var/projects/)",
                                        "the repository or directory itself stays as it is"])
