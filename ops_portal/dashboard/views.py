from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.approvals.choices import RequestState
from ops_portal.approvals.models import ApprovalRequest
from ops_portal.audit.models import AuditEvent
from ops_portal.core import heartbeat
from ops_portal.inventory import warm
from ops_portal.inventory.models import Host
from ops_portal.jobs import live
from ops_portal.jobs.choices import FAILED_STATES, WAITING_STATES, JobState
from ops_portal.jobs.models import Job
from ops_portal.monitoring.choices import AlertState
from ops_portal.monitoring.models import Alert

from . import charts, search


def approvals_for(user):
    """Pending requests the user could decide: where they approve, not their own."""
    return (restrict(ApprovalRequest.objects.all(), user, Action.APPROVE)
            .filter(state=RequestState.PENDING).exclude(requested_by=user))


@login_required
def nav_counts(request):
    """The navigation's counts (approvals waiting for me, alerts firing, people's jobs running),
    fetched by htmx when the page loads and again when a stream says one may have changed."""
    user = request.user
    context = {
        "approvals": approvals_for(user).count(),
        "alerts": restrict(Alert.objects.filter(state=AlertState.FIRING), user, Action.VIEW).count(),
        "running": restrict(Job.objects.by_people().filter(state=JobState.RUNNING), user, Action.VIEW).count(),
    }
    return render(request, "dashboard/_nav_counts.html", context)


def _chart_choice(request):
    """(range, environment name or "", the names the user may choose) from ?range=6h|24h|7d and
    ?environment=name (anything else: the defaults)."""
    range_key = request.GET.get("range") if request.GET.get("range") in charts.RANGES else charts.DEFAULT_RANGE
    names = list(charts.environments(request.user).values_list("name", flat=True))
    chosen = request.GET.get("environment") if request.GET.get("environment") in names else ""
    return range_key, chosen, names


def _chart_context(request):
    """The fleet charts' choices; their data comes from fleet_data, fetched by the page, so a slow
    aggregate over a large fleet never holds the dashboard back."""
    range_key, chosen, names = _chart_choice(request)
    query = urlencode({"range": range_key, **({"environment": chosen} if chosen else {})})
    return {"chart_range": range_key, "chart_ranges": list(charts.RANGES), "chart_environment": chosen,
            "chart_environments": names, "chart_data_url": f"{reverse('dashboard:fleet_data')}?{query}"}


@login_required
def fleet_data(request):
    """The fleet charts' data as JSON (dashboard/charts.py), for the dashboard's charts."""
    range_key, chosen, _ = _chart_choice(request)
    return JsonResponse(charts.fleet(request.user, environment=chosen or None, range_key=range_key))


@login_required
def home(request):
    user = request.user
    environments = restrict(Environment.objects.all(), user, Action.VIEW)
    hosts = restrict(Host.objects.all(), user, Action.VIEW)
    try:
        workers = heartbeat.alive("worker")
        warm_ssh = warm.totals()
    except Exception:  # Redis down: the page still renders and says so
        workers = warm_ssh = None
    # People's work; the portal's own periodic jobs (metrics every minute) would drown it.
    jobs = restrict(Job.objects.by_people(), user, Action.VIEW)
    since = timezone.now() - timedelta(hours=24)
    alerts = restrict(Alert.objects.all(), user, Action.VIEW)
    context = {
        "alerts_firing": alerts.filter(state=AlertState.FIRING).count(),
        "alerts_acknowledged": alerts.filter(state=AlertState.ACKNOWLEDGED).count(),
        "running": jobs.filter(state=JobState.RUNNING).count(),
        "waiting": jobs.filter(state__in=WAITING_STATES).count(),
        "failed_today": jobs.filter(state__in=FAILED_STATES,
                                    finished__gte=since).count(),
        "recent_jobs": live.attach_counts(jobs.select_related("environment")[:8]),
        "approvals_for_me": approvals_for(user).count(),
        "environments": environments,
        "host_count": hosts.count(),
        "unreachable_count": hosts.filter(reachability="unreachable").count(),
        "recent_audit": restrict(AuditEvent.objects.all(), user, Action.VIEW)[:10],
        "workers": workers,
        "warm_ssh": warm_ssh,
        **_chart_context(request),
    }
    return render(request, "dashboard/home.html", context)


@login_required
def search_page(request):
    """The global search's page: the navigation's box lands here (GET /search/?q=)."""
    text = search.clean(request.GET.get("q"))
    groups = search.search(request.user, text) if text else []
    template = "dashboard/_search_results.html" if request.headers.get("HX-Request") else "dashboard/search.html"
    return render(request, template, {"q": text, "groups": groups, "limit": search.LIMIT})
