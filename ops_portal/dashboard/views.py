from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.audit.models import AuditEvent
from ops_portal.core import heartbeat
from ops_portal.inventory.models import Host


@login_required
def home(request):
    user = request.user
    environments = restrict(Environment.objects.all(), user, Action.VIEW)
    hosts = restrict(Host.objects.all(), user, Action.VIEW)
    try:
        workers = heartbeat.alive("worker")
    except Exception:  # Redis down: the page still renders and says so
        workers = None
    context = {
        "environments": environments,
        "host_count": hosts.count(),
        "unreachable_count": hosts.filter(reachability="unreachable").count(),
        "recent_audit": restrict(AuditEvent.objects.all(), user, Action.VIEW)[:10],
        "workers": workers,
    }
    return render(request, "dashboard/home.html", context)
