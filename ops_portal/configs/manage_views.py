"""Configuration template pages: create, edit and delete through services.create_config /
update_config / delete_config, like the API (permission decided before any write, audited)."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core.web import confirm_delete, form_page, require_manage

from . import services
from .forms import ConfigTemplateForm
from .models import ConfigTemplate

INTRO = ("A file every matching host should hold, rendered per host. Any change makes a new version: apply jobs "
         "planned with the old one refuse to run.")


def _visible(user):
    return restrict(ConfigTemplate.objects.select_related("environment"), user, Action.VIEW)


def _page(request, config=None):
    require_manage(request.user, config)
    form = ConfigTemplateForm(request.POST or None,
                              initial=ConfigTemplateForm.initial_from(config) if config is not None else {},
                              environments=restrict(Environment.objects.all(), request.user, Action.MANAGE))
    save = services.create_config if config is None else services.update_config
    back = reverse("configs:detail", args=[config.pk]) if config is not None else reverse("configs:home")
    return form_page(request, form, save, obj=config, what="configuration template", intro=INTRO, back=back,
                     done=reverse("configs:home"),
                     delete_url=reverse("configs:delete", args=[config.pk]) if config else None)


@login_required
@require_http_methods(["GET", "POST"])
def config_new(request):
    return _page(request)


@login_required
@require_http_methods(["GET", "POST"])
def config_edit(request, pk):
    return _page(request, get_object_or_404(_visible(request.user), pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def config_delete(request, pk):
    config = get_object_or_404(_visible(request.user), pk=pk)
    reports = config.drift_reports.count()
    consequences = [f"its drift reports on {reports} host{'s' if reports != 1 else ''}, and the drift alerts "
                    "they raised (resolved)", "the files already on the hosts stay as they are"]
    return confirm_delete(request, config, services.delete_config, what="configuration template",
                          done=reverse("configs:home"), back=reverse("configs:detail", args=[pk]),
                          consequences=consequences)
