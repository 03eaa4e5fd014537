"""Drill-down across levels on pages of lower apps (a host page names its engines, containers,
programs, processes and alerts): the dashboard sits above every level, so the host page's
inventory app needs no import of them."""
from django import template
from django.db.models import Count, Q
from django.urls import reverse

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.containers.models import Container, Engine
from ops_portal.monitoring.choices import OPEN_STATES
from ops_portal.monitoring.models import Alert
from ops_portal.processes.models import Process
from ops_portal.programs.models import Program

register = template.Library()


@register.simple_tag(takes_context=True)
def host_levels(context, host):
    """What runs on a host, one level down each, with counts and links (five queries):
    {"engines": [{"engine", "containers", "url"}], "containers", "containers_url", "programs",
    "programs_url", "processes", "processes_url", "alerts", "alerts_url"}."""
    user = context["request"].user
    engines = (restrict(Engine.objects.filter(host=host), user, Action.VIEW)
               .annotate(n=Count("containers")).order_by("name"))
    return {
        "engines": [{"engine": e, "containers": e.n, "url": reverse("containers:engine", args=[e.pk])}
                    for e in engines],
        "containers": restrict(Container.objects.filter(host=host), user, Action.VIEW).count(),
        "containers_url": reverse("containers:home") + f"?host={host.pk}",
        "programs": restrict(Program.objects.filter(host=host), user, Action.VIEW).count(),
        "programs_url": reverse("programs:home") + f"?host={host.pk}",
        "processes": restrict(Process.objects.filter(host=host), user, Action.VIEW).count(),
        "processes_url": reverse("processes:host", args=[host.pk]),
        "alerts": restrict(Alert.objects.filter(Q(host=host), state__in=OPEN_STATES), user, Action.VIEW).count(),
        "alerts_url": "#host-monitoring",
    }
