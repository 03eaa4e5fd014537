from django import template

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
