"""Approval policy pages: the list, create, edit and delete, through services.create_policy /
update_policy / delete_policy like the API (the permission decision before any write, the audit row)."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict, scope_for
from ops_portal.core.web import confirm_delete, form_page, require_manage

from . import services
from .forms import PolicyForm
from .models import ApprovalPolicy

INTRO = ("A policy holds matching work until enough people other than the requester approve it. It matches when "
         "every condition it sets holds; when several match, the strictest wins.")


def _visible(user):
    return restrict(ApprovalPolicy.objects.select_related("environment"), user, Action.VIEW)


@login_required
def policies(request):
    items = list(_visible(request.user))
    manage = scope_for(request.user, Action.MANAGE)
    for policy in items:
        policy.can_manage = manage.allows(policy.environment_id)
    environments = restrict(Environment.objects.all(), request.user, Action.VIEW).order_by("name")
    covered = {p.environment_id for p in items if p.enabled}
    return render(request, "approvals/policies.html", {
        "policies": items, "can_create": not manage.empty,
        "ungated": [e for e in environments if e.pk not in covered]})


def _page(request, policy=None):
    require_manage(request.user, policy)
    environments = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    initial = PolicyForm.initial_from(policy) if policy is not None else {}
    form = PolicyForm(request.POST or None, environments=environments, initial=initial)
    save = services.create_policy if policy is None else services.update_policy
    return form_page(request, form, save, obj=policy, what="approval policy", intro=INTRO,
                     back=reverse("approvals:policies"), done=reverse("approvals:policies"),
                     delete_url=reverse("approvals:policy_delete", args=[policy.pk]) if policy else None)


@login_required
@require_http_methods(["GET", "POST"])
def policy_new(request):
    return _page(request)


@login_required
@require_http_methods(["GET", "POST"])
def policy_edit(request, pk):
    return _page(request, get_object_or_404(_visible(request.user), pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def policy_delete(request, pk):
    policy = get_object_or_404(_visible(request.user), pk=pk)
    return confirm_delete(request, policy, services.delete_policy, what="approval policy",
                          done=reverse("approvals:policies"), back=reverse("approvals:policy_edit", args=[pk]),
                          consequences=[f"the approval it asks of matching work in {policy.environment.name} "
                                        "(requests already open keep their requirement)"])
