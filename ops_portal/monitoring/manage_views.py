"""Alert rule pages: create, edit and delete through services.create_rule / update_rule /
delete_rule, like the API (permission decided before any write, audited)."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core.web import confirm_delete, form_page, require_manage
from ops_portal.inventory.models import HostGroup
from ops_portal.jobs.models import JobTemplate

from . import services
from .choices import OPEN_STATES
from .forms import AlertRuleForm
from .models import AlertRule

INTRO = ("A metric rule fires an alert when a metric of the hosts in its scope passes the threshold for long "
         "enough, and resolves it once the value is back past the clear threshold. A state rule fires one alert per "
         "container not running (or unhealthy), Swarm service short of tasks, or program not running for long "
         "enough, and resolves it once that object is fine again, gone or out of scope.")


def _visible(user):
    return restrict(AlertRule.objects.select_related("environment"), user, Action.VIEW)


def _page(request, rule=None):
    require_manage(request.user, rule)
    user = request.user
    form = AlertRuleForm(
        request.POST or None, initial=AlertRuleForm.initial_from(rule) if rule is not None else {},
        environments=restrict(Environment.objects.all(), user, Action.MANAGE),
        groups=restrict(HostGroup.objects.select_related("environment"), user, Action.VIEW),
        templates=restrict(JobTemplate.objects.select_related("environment"), user, Action.VIEW))
    save = services.create_rule if rule is None else services.update_rule
    home = reverse("monitoring:home") + "#alert-rules"
    return form_page(request, form, save, obj=rule, what="alert rule", intro=INTRO, back=home, done=home,
                     delete_url=reverse("monitoring:rule_delete", args=[rule.pk]) if rule else None,
                     template="monitoring/rule_form.html")


@login_required
@require_http_methods(["GET", "POST"])
def rule_new(request):
    return _page(request)


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request, pk):
    return _page(request, get_object_or_404(_visible(request.user), pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def rule_delete(request, pk):
    rule = get_object_or_404(_visible(request.user), pk=pk)
    open_count = rule.alerts.filter(state__in=OPEN_STATES).count()
    consequences = [f"{open_count} open alert{'s' if open_count != 1 else ''}: resolved (their history stays)"]
    return confirm_delete(request, rule, services.delete_rule, what="alert rule",
                          done=reverse("monitoring:home") + "#alert-rules",
                          back=reverse("monitoring:rule_edit", args=[pk]), consequences=consequences)
