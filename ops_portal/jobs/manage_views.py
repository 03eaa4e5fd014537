"""Job template pages: create, edit (with the parameter builder) and delete, through the same
service functions as the API (templates.py), so the rules, the permission decision before any write
and the audit row are the API's."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core.web import actor, attempt, confirm_delete, form_page, require_manage

from . import schedules, templates
from .forms import ScheduleForm
from .manage_forms import JobTemplateForm, definitions, parameter_formset
from .models import JobSchedule, JobTemplate


def _visible(user):
    return restrict(JobTemplate.objects.select_related("environment"), user, Action.VIEW)


def _form_page(request, template=None):
    require_manage(request.user, template)
    environments = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    initial = JobTemplateForm.initial_from(template) if template is not None else {}
    if template is None and len(environments) == 1:
        initial["environment"] = environments[0].pk
    form = JobTemplateForm(request.POST or None, environments=environments, initial=initial)
    formset = parameter_formset(request.POST or None, template)
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        values = form.values(definitions(formset))
        if template is None:
            saved = attempt(request, templates.create_template, actor(request), form=form, **values)
        else:
            saved = attempt(request, templates.update_template, actor(request), template, form=form, **values)
        if saved:
            messages.success(request, f"Template {saved.name} saved (version {saved.version}).")
            return redirect("jobs:templates")
    return render(request, "jobs/template_form.html", {"form": form, "formset": formset, "template": template})


@login_required
@require_http_methods(["GET", "POST"])
def template_new(request):
    return _form_page(request)


@login_required
@require_http_methods(["GET", "POST"])
def template_edit(request, pk):
    return _form_page(request, get_object_or_404(_visible(request.user), pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def template_delete(request, pk):
    template = get_object_or_404(_visible(request.user), pk=pk)
    consequences = [f"schedule {name}" for name in template.schedules.values_list("name", flat=True)]
    consequences += [f"the runbook link of alert rule {name}"
                     for name in template.alert_rules.values_list("name", flat=True)]
    return confirm_delete(request, template, templates.delete_template, what="job template",
                          done=reverse("jobs:templates"), back=reverse("jobs:template_edit", args=[template.pk]),
                          consequences=consequences)


def _schedule(user, pk):
    return get_object_or_404(restrict(JobSchedule.objects.select_related("template__environment"), user,
                                      Action.VIEW), pk=pk)


@login_required
@require_http_methods(["GET", "POST"])
def schedule_edit(request, pk):
    schedule = _schedule(request.user, pk)
    require_manage(request.user, schedule)
    initial = {name: getattr(schedule, name) for name in ("name", "kind", "cron", "timezone", "interval_seconds",
                                                          "run_at", "missed_policy", "params", "limit")}
    initial["template"] = schedule.template_id
    form = ScheduleForm(request.POST or None, initial=initial,
                        templates=restrict(JobTemplate.objects.select_related("environment"), request.user,
                                           Action.MANAGE))
    return form_page(request, form, schedules.update_schedule, obj=schedule, what="schedule",
                     intro="Runs launch as the schedule's owner; a change asks again for its standing approval "
                           "where the environment's policies say so.",
                     back=reverse("jobs:schedules"), done=reverse("jobs:schedules"),
                     delete_url=reverse("jobs:schedule_delete", args=[schedule.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def schedule_delete(request, pk):
    schedule = _schedule(request.user, pk)
    consequences = [f"its runs of template {schedule.template.name} ({schedule.template.environment.name})"]
    if schedule.standing_request_id:
        consequences.append("its standing approval")
    return confirm_delete(request, schedule, schedules.delete_schedule, what="schedule",
                          done=reverse("jobs:schedules"), back=reverse("jobs:schedules"), consequences=consequences)
