from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, restrict
from ops_portal.core.web import actor, attempt, paginate

from . import evidence, services
from .choices import Decision, RequestState
from .models import ApprovalRequest


def _waiting_context(request):
    """Requests waiting for me (pending, in environments where I approve, not my own) and mine."""
    queryset = restrict(ApprovalRequest.objects.select_related("environment"), request.user, Action.APPROVE)
    waiting = queryset.filter(state=RequestState.PENDING).exclude(requested_by=request.user).order_by("expires_at")
    recent = restrict(ApprovalRequest.objects.select_related("environment"), request.user, Action.VIEW)
    return {"waiting": list(waiting[:WAITING_SHOWN]),
            "mine": recent.filter(requested_by=request.user, state=RequestState.PENDING)}, recent


WAITING_SHOWN = 200


@login_required
def inbox(request):
    context, recent = _waiting_context(request)
    context["page"] = paginate(request, recent.exclude(state=RequestState.PENDING), 25)
    return render(request, "approvals/inbox.html", context)


@login_required
def waiting(request):
    """The inbox's waiting part alone, swapped in by htmx when the approvals stream speaks."""
    return render(request, "approvals/_waiting.html", _waiting_context(request)[0])


@login_required
@require_http_methods(["GET", "POST"])
def detail(request, pk):
    approval = get_object_or_404(restrict(ApprovalRequest.objects.select_related("environment"), request.user,
                                          Action.VIEW), pk=pk)
    if request.method == "POST":
        choice = request.POST.get("decision")
        comment = request.POST.get("comment", "")
        if choice in Decision.values:
            attempt(request, services.decide, actor(request), approval, choice, comment,
                    success="Approved." if choice == Decision.APPROVE else "Rejected.")
        elif comment.strip():
            attempt(request, services.add_comment, actor(request), approval, comment, success="Comment added.")
        return redirect("approvals:detail", pk=approval.pk)
    approval.refresh_from_db()
    context = {
        "approval": approval,
        "decisions": approval.decisions.all(),
        "comments": approval.comments.all(),
        "can_decide": (approval.state == RequestState.PENDING and approval.requested_by_id != request.user.pk
                       and can(request.user, Action.APPROVE, approval.environment)
                       and not approval.decisions.filter(user=request.user).exists()),
        "own": approval.requested_by_id == request.user.pk,
        "evidence": evidence.panel(approval, request.user, request),
    }
    return render(request, "approvals/detail.html", context)


@login_required
def link(request, token):
    """A one-time link from a notification: leads to the request after sign-in."""
    approval = attempt(request, services.use_link, actor(request), token)
    if not approval:
        return redirect("approvals:inbox")
    if not can(request.user, Action.VIEW, approval.environment):
        messages.error(request, "You may not view that request.")
        return redirect("approvals:inbox")
    return redirect("approvals:detail", pk=approval.pk)
