"""The processes section of the host page (inventory sits below this app and does not import it)."""
from django import template

from .. import queries
from ..models import Process

register = template.Library()
SHOWN = 5


@register.simple_tag
def host_processes(host):
    """The host's latest scan, a newer failed one, and its top processes by CPU and memory. The page
    shows the host already, so the user may view it."""
    scan = queries.latest_scan(host)
    processes = Process.objects.filter(host=host)
    return {"scan": scan, "failure": queries.last_failure(host, scan),
            "top_cpu": queries.top(processes, "cpu", SHOWN) if scan else [],
            "top_memory": queries.top(processes, "memory", SHOWN) if scan else []}
