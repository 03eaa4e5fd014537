from urllib.parse import urlencode

from django import template
from django.urls import reverse

from ..choices import OPEN_STATES
from ..models import Alert
from ..views import annotate

register = template.Library()


@register.simple_tag(takes_context=True)
def host_alerts(context, host):
    """Open alerts of a host the page already shows (viewing the host means viewing its environment)."""
    request = context.get("request")
    alerts = list(Alert.objects.filter(host=host, state__in=OPEN_STATES).select_related("rule")
                  .order_by("-fired_at")[:50])
    return annotate(alerts, request.user) if request is not None else alerts


@register.inclusion_tag("monitoring/_subject_alerts.html", takes_context=True)
def subject_alerts(context, kind, obj):
    """The open alerts of a container, Swarm service or program the page shows (viewing it means
    viewing its environment), with a link to all of its alerts."""
    request = context.get("request")
    alerts = list(Alert.objects.filter(subject_kind=kind, subject_id=obj.pk, state__in=OPEN_STATES)
                  .select_related("rule", "environment").order_by("-fired_at")[:50])
    if request is not None:
        annotate(alerts, request.user)
    return {"alerts": alerts, "csrf_token": context.get("csrf_token"),
            "all_url": reverse("monitoring:home") + "?" + urlencode({"subject_kind": kind, "subject_id": obj.pk})}
