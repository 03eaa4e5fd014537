"""Pages of self-healing: policies (list, create, edit, delete), the healing history, and the panel
the container page loads (htmx) with the container's restart history."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, restrict
from ops_portal.containers.models import Container, Engine
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.monitoring.choices import OPEN_STATES as OPEN_ALERTS
from ops_portal.monitoring.models import Alert

from . import services
from .choices import ALERT_SOURCE
from .forms import PolicyForm
from .healer import alert_key
from .models import HealingEvent, HealingPolicy

HISTORY = 50


def _form(request, data=None, instance=None):
    manageable = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    engines = restrict(Engine.objects.select_related("environment"), request.user, Action.MANAGE)
    return PolicyForm(data, instance=instance, environments=manageable, engines=engines), manageable


@login_required
@require_http_methods(["GET", "POST"])
def policies(request):
    form, manageable = _form(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        policy = attempt(request, services.create_policy, actor(request), form=form, success="Policy created.",
                         **form.service_fields())
        if policy:
            return redirect("healing:policy", pk=policy.pk)
    items = restrict(HealingPolicy.objects.select_related("environment", "engine"), request.user, Action.VIEW)
    events = restrict(HealingEvent.objects.select_related("engine", "job"), request.user, Action.VIEW)
    return render(request, "healing/policies.html", {
        "items": items, "form": form, "can_manage": manageable.exists(),
        "page": paginate(request, events.order_by("-created", "-pk"), per_page=50)})


@login_required
@require_http_methods(["GET", "POST"])
def policy_detail(request, pk):
    policy = get_object_or_404(restrict(HealingPolicy.objects.select_related("environment", "engine"),
                                        request.user, Action.VIEW), pk=pk)
    can_manage = can(request.user, Action.MANAGE, policy.environment_id)
    form = _form(request, instance=policy)[0] if can_manage else None
    if request.method == "POST":
        if request.POST.get("form") == "delete":
            if attempt(request, services.delete_policy, actor(request), policy, success="Policy deleted."):
                return redirect("healing:policies")
        else:
            form = _form(request, request.POST, instance=policy)[0]
            if form.is_valid() and attempt(request, services.update_policy, actor(request), policy, form=form,
                                           success="Policy saved.", **form.service_fields()):
                return redirect("healing:policy", pk=policy.pk)
    events = policy.events.select_related("engine", "job")[:HISTORY]
    return render(request, "healing/policy.html", {"policy": policy, "form": form, "can_manage": can_manage,
                                                   "events": events})


@login_required
@require_GET
def container_panel(request, pk):
    """The container's healing history (by engine and name: recreates keep it) and its alert."""
    container = get_object_or_404(restrict(Container.objects.select_related("engine"), request.user, Action.VIEW),
                                  pk=pk)
    events = (HealingEvent.objects.filter(engine_id=container.engine_id, container_name=container.name)
              .select_related("job")[:HISTORY])
    alert = Alert.objects.filter(source=ALERT_SOURCE, key=alert_key(container.engine_id, container.name),
                                 state__in=OPEN_ALERTS).first()
    return render(request, "healing/_container_panel.html", {"container": container, "events": events,
                                                              "alert": alert})
