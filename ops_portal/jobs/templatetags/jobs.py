"""Template tags other apps' pages use to show jobs (they sit below jobs and do not import it)."""
from urllib.parse import urlencode

from django import template
from django.urls import reverse

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict

from ..models import Job

register = template.Library()

SHOW_SYSTEM = "system_jobs"  # the query parameter that asks for the portal's own jobs too


def _showing_system(request):
    return request is not None and request.GET.get(SHOW_SYSTEM) == "1"


@register.simple_tag(takes_context=True)
def object_jobs(context, kind, ref_id, limit=20):
    """The newest jobs that acted on one object, restricted to the environments the user may view
    (an object that moved between environments keeps jobs of the one it left). The portal's own
    periodic jobs (metrics every minute, facts, drift checks, scans) would drown people's work:
    they are left out unless the page was asked for them (?system_jobs=1)."""
    request = context.get("request")
    if request is None:
        return Job.objects.none()
    jobs = Job.objects.filter(targets__kind=kind, targets__ref_id=ref_id)
    if not _showing_system(request):
        jobs = jobs.by_people()
    return restrict(jobs, request.user, Action.VIEW).select_related("environment").order_by("-created")[:limit]


# The kinds of objects alerts are raised about (monitoring's SubjectKind, bar the host).
ALERT_SUBJECTS = {"container", "service", "program"}


def _alerts_link(kind, obj, host):
    """A container's, service's or program's own alerts; a host's on its page; else its host's."""
    if kind in ALERT_SUBJECTS:
        url = reverse("monitoring:home") + "?" + urlencode({"subject_kind": kind, "subject_id": obj.pk})
        return {"alerts_url": url, "alerts_label": "Its alerts"}
    if host is None:
        return {"alerts_url": None, "alerts_label": ""}
    if host == obj:
        return {"alerts_url": "#host-monitoring", "alerts_label": "Its alerts"}
    return {"alerts_url": reverse("inventory:host", args=[host.pk]) + "#host-monitoring",
            "alerts_label": "Alerts on its host"}


@register.inclusion_tag("jobs/_object_links.html", takes_context=True)
def object_links(context, kind, obj, host=None):
    """Above an object's job table: show or hide the portal's own jobs, and links to every job,
    and every audit entry, of the object (filtered lists), and to its alerts (a container's,
    service's or program's own; a process's are its host's)."""
    request = context.get("request")
    showing = _showing_system(request)
    params = request.GET.copy() if request is not None else {}
    if showing:
        params.pop(SHOW_SYSTEM, None)
    else:
        params[SHOW_SYSTEM] = "1"
    toggle = "?" + params.urlencode() if params else "?"
    jobs_query = {"target_kind": kind, "target_id": obj.pk}
    if showing:
        jobs_query["system"] = "any"
    return {
        "showing_system": showing,
        "toggle_url": (request.path if request is not None else "") + toggle,
        "jobs_url": reverse("jobs:list") + "?" + urlencode(jobs_query),
        **_alerts_link(kind, obj, host),
        "audit_url": reverse("audit:list") + "?" + urlencode({"object_type": obj._meta.label_lower,
                                                              "object_id": obj.pk}),
    }
