import time
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from .. import metrics
from ..choices import OPEN_STATES, ContainerMetric, ProgramMetric, ServiceMetric
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


MIB, KIB = 1048576, 1024
# The charts of an object's page: (metric, title, divisor of the stored values).
OBJECT_CHARTS = {
    "container": [(ContainerMetric.CPU_PERCENT, "CPU % (of one CPU)", 1),
                  (ContainerMetric.MEM_BYTES, "Memory (MiB)", MIB),
                  (ContainerMetric.NET_RX_RATE, "Network received (KiB/s)", KIB),
                  (ContainerMetric.NET_TX_RATE, "Network sent (KiB/s)", KIB),
                  (ContainerMetric.BLOCK_READ_RATE, "Block read (KiB/s)", KIB),
                  (ContainerMetric.BLOCK_WRITE_RATE, "Block written (KiB/s)", KIB)],
    "service": [(ServiceMetric.CPU_PERCENT, "CPU % per task (average)", 1),
                (ServiceMetric.MEM_PERCENT, "Memory % of the limit per task (average)", 1)],
    "program": [(ProgramMetric.CPU_PERCENT, "CPU % (of one CPU, all its processes)", 1),
                (ProgramMetric.MEM_BYTES, "Memory (MiB, all its processes)", MIB)],
}
CHART_SECONDS = 3600


@register.inclusion_tag("monitoring/_object_charts.html")
def object_charts(kind, host_id, key, empty):
    """The last hour of an object's samples (a container's, a Swarm service's, a program's: the
    series of host `host_id` keyed by the object), one chart per metric; `empty` says why there
    may be none."""
    charts = [(metric.value, title, scale) for metric, title, scale in OBJECT_CHARTS[kind]]
    until = int(time.time()) + 1
    series = metrics.object_series(host_id, key, [m for m, _, _ in charts], until - CHART_SECONDS, until) \
        if host_id else {}
    return {"dom_id": f"{kind}-charts", "data_id": f"{kind}-series", "charts": charts, "series": series,
            "empty": empty}
