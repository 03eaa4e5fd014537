"""Autoscaling pages: the policies (with a form for a new one) and a policy with its edit form,
"evaluate now" and the history of its evaluations (metric values, decision, job)."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, restrict
from ops_portal.containers.models import Engine, Service
from ops_portal.core.web import actor, attempt, paginate

from . import services
from .choices import Outcome
from .filtersets import EvaluationFilterSet
from .forms import PolicyForm
from .models import Evaluation, ScalingPolicy


def _managers(user):
    return restrict(Engine.objects.select_related("environment"), user, Action.OPERATE).filter(swarm_role="manager")


def _service_names(user):
    return restrict(Service.objects.filter(mode="replicated"), user, Action.OPERATE).values_list("name", flat=True)


@login_required
@require_http_methods(["GET", "POST"])
def policy_list(request):
    managers = _managers(request.user)
    form = PolicyForm(request.POST or None, engines=managers, services=_service_names(request.user),
                      initial={"service_name": request.GET.get("service", "")[:255]})
    if request.method == "POST" and form.is_valid():
        policy = attempt(request, services.create_policy, actor(request), form=form,
                         success="Autoscaling policy saved.", **form.cleaned_data)
        if policy:
            return redirect("autoscaling:policy", pk=policy.pk)
    last = Evaluation.objects.filter(policy=OuterRef("pk")).exclude(outcome=Outcome.PENDING).order_by("-created", "-id")
    policies = restrict(ScalingPolicy.objects.select_related("engine__environment"), request.user,
                        Action.VIEW).annotate(
        last_outcome=Subquery(last.values("outcome")[:1]), last_value=Subquery(last.values("value")[:1]),
        last_at=Subquery(last.values("created")[:1]), last_reason=Subquery(last.values("reason")[:1]))
    return render(request, "autoscaling/policies.html", {"policies": policies, "form": form,
                                                         "can_create": managers.exists(), "outcomes": Outcome})


@login_required
@require_http_methods(["GET", "POST"])
def policy_detail(request, pk):
    policy = get_object_or_404(restrict(ScalingPolicy.objects.select_related("engine__environment"), request.user,
                                        Action.VIEW), pk=pk)
    can_operate = can(request.user, Action.OPERATE, policy.engine.environment_id)
    form = (PolicyForm(instance=policy, engines=_managers(request.user), services=_service_names(request.user))
            if can_operate else None)
    if request.method == "POST":
        what, me = request.POST.get("form"), actor(request)
        if what == "edit":
            form = PolicyForm(request.POST, instance=policy, engines=_managers(request.user),
                              services=_service_names(request.user))
            if form.is_valid() and attempt(request, services.update_policy, me, policy, form=form,
                                           success="Autoscaling policy saved.", **form.cleaned_data):
                return redirect("autoscaling:policy", pk=policy.pk)
        elif what == "evaluate":
            if attempt(request, services.evaluate_now, me, policy,
                       success="Evaluation sent to a worker: it appears below in a few seconds."):
                return redirect("autoscaling:policy", pk=policy.pk)
        elif what == "delete":
            if attempt(request, services.delete_policy, me, policy, success="Autoscaling policy deleted."):
                return redirect("autoscaling:policies")
        else:
            messages.error(request, "Unknown form.")
    history = policy.evaluations.select_related("job")
    filterset = EvaluationFilterSet(request.GET, queryset=history)
    page = paginate(request, filterset.qs if filterset.is_valid() else history.none(), per_page=50)
    service = Service.objects.filter(engine_id=policy.engine_id, name=policy.service_name).first()
    return render(request, "autoscaling/policy.html", {
        "policy": policy, "form": form, "can_operate": can_operate, "page": page, "service": service,
        "scaled_only": request.GET.get("scaled") == "true",
        "query": "scaled=true" if request.GET.get("scaled") == "true" else ""})
