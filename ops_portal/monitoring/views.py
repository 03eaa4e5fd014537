from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict, scope_for
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.jobs.models import JobTemplate

from . import services
from .choices import OPEN_STATES, AlertState, Severity, SubjectKind
from .models import Alert, AlertRule

OPEN_PER_PAGE = 100
SEVERITY_ORDER = Case(When(severity=Severity.CRITICAL, then=Value(0)), When(severity=Severity.WARNING, then=Value(1)),
                      default=Value(2), output_field=IntegerField())


def runbooks(user, template_ids):
    """{template id: name} of the runbook templates the user may see (the launch page checks the rest)."""
    template_ids = {pk for pk in template_ids if pk}
    if not template_ids:
        return {}
    return dict(restrict(JobTemplate.objects.filter(pk__in=template_ids), user, Action.VIEW).values_list("pk", "name"))


def annotate(alerts, user):
    """Mark what the user may do with each alert on the page."""
    operate = scope_for(user, Action.OPERATE)
    books = runbooks(user, {a.rule.runbook_id for a in alerts if a.rule_id})
    # Links made from one reverse() each, not one per row.
    host_url, ack_url = reverse("inventory:host", args=[0]), reverse("monitoring:acknowledge", args=[0])
    for alert in alerts:
        alert.host_url = host_url.replace("/0/", f"/{alert.host_id}/") if alert.host_id else ""
        alert.ack_url = ack_url.replace("/0/", f"/{alert.pk}/")
        alert.can_acknowledge = alert.state == AlertState.FIRING and operate.allows(alert.environment_id)
        template_id = alert.rule.runbook_id if alert.rule_id else None
        alert.runbook_link = (template_id, books[template_id]) if template_id in books else None
    return alerts


class SubjectForm(forms.Form):
    """The alerts of one subject (a container's, service's, program's or host's page links here)."""

    subject_kind = forms.ChoiceField(choices=SubjectKind.choices)
    subject_id = forms.IntegerField(min_value=1, max_value=2**63 - 1)


def subject_filter(request):
    """(kind, id, name) of the subject the page is narrowed to, or None; bad input is a message."""
    if "subject_kind" not in request.GET and "subject_id" not in request.GET:
        return None
    form = SubjectForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        messages.error(request, f"Not a subject to filter alerts by ({problems}); showing all alerts.")
        return None
    kind, subject_id = form.cleaned_data["subject_kind"], form.cleaned_data["subject_id"]
    return kind, subject_id, SubjectKind(kind).label


@login_required
def home(request):
    """Open alerts (live), recently resolved ones, and the rules; ?subject_kind=&subject_id= narrows
    the alerts to one container's, service's, program's or host's."""
    visible = restrict(Alert.objects.select_related("environment", "rule"), request.user, Action.VIEW)
    subject = subject_filter(request)
    if subject is not None:
        visible = visible.filter(subject_kind=subject[0], subject_id=subject[1])
        latest = visible.exclude(subject_name="").order_by("-fired_at").values_list("subject_name", flat=True)
        subject = {"kind": subject[0], "id": subject[1], "label": subject[2], "name": latest.first() or ""}
    # Most severe first, then newest, a page at a time: with thousands open (an outage), the
    # first page is what needs eyes, and 500 rows took 280-370 ms of template time.
    open_alerts = paginate(request, visible.filter(state__in=OPEN_STATES).order_by(SEVERITY_ORDER, "-fired_at", "-pk"),
                           OPEN_PER_PAGE, param="open")
    open_alerts.object_list = annotate(list(open_alerts.object_list), request.user)
    rules = restrict(AlertRule.objects.select_related("environment", "group"), request.user, Action.VIEW)
    rules = list(rules)
    books = runbooks(request.user, {r.runbook_id for r in rules})
    manage = scope_for(request.user, Action.MANAGE)
    for rule in rules:
        rule.can_manage = manage.allows(rule.environment_id)
        rule.runbook_link = (rule.runbook_id, books[rule.runbook_id]) if rule.runbook_id in books else None
    context = {
        "subject": subject,
        "query": urlencode({"subject_kind": subject["kind"], "subject_id": subject["id"]}) if subject else "",
        "open_alerts": open_alerts,
        "resolved": paginate(request, visible.filter(state=AlertState.RESOLVED).order_by("-resolved_at"), 25),
        "rules": rules,
        "can_operate": not scope_for(request.user, Action.OPERATE).empty,
        "can_create_rule": not manage.empty,
    }
    return render(request, "monitoring/home.html", context)


@login_required
@require_POST
def acknowledge(request, pk):
    alert = get_object_or_404(restrict(Alert.objects.all(), request.user, Action.VIEW), pk=pk)
    attempt(request, services.acknowledge, actor(request), alert, request.POST.get("note", ""),
            success=f"Alert #{alert.pk} acknowledged.")
    return redirect("monitoring:home")
