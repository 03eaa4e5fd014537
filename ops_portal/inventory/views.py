from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Max
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, restrict
from ops_portal.core.web import actor, attempt, confirm_delete, form_page, paginate, require_manage

from . import services, transfer
from .filtersets import HostFilterSet
from .forms import CredentialEditForm, CredentialForm, HostForm, ImportForm, RotateForm, SiteForm
from .models import ComplianceResult, Credential, Host, Site, hosts_for_lists


@login_required
@require_http_methods(["GET", "POST"])
def hosts(request):
    queryset = restrict(hosts_for_lists(), request.user, Action.VIEW)
    manageable = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    credentials = restrict(Credential.objects.all(), request.user, Action.MANAGE)
    sites = restrict(Site.objects.all(), request.user, Action.VIEW)
    host_form = HostForm(prefix="host", environments=manageable, credentials=credentials, sites=sites)
    import_form = ImportForm(prefix="import", environments=manageable)
    if request.method == "POST" and request.POST.get("form") == "host":
        host_form = HostForm(request.POST, prefix="host", environments=manageable, credentials=credentials,
                             sites=sites)
        if host_form.is_valid():
            host = attempt(request, services.create_host, actor(request), form=host_form, success="Host added.",
                           **host_form.cleaned_data)
            if host:
                return redirect("inventory:host", pk=host.pk)
    elif request.method == "POST" and request.POST.get("form") == "import":
        import_form = ImportForm(request.POST, request.FILES, prefix="import", environments=manageable)
        if import_form.is_valid() and _import(request, import_form):
            return redirect("inventory:hosts")
    filterset = HostFilterSet(request.GET, queryset=queryset)
    page = paginate(request, filterset.qs if filterset.is_valid() else queryset.none())
    return render(request, "inventory/hosts.html", {
        "page": page, "filterset": filterset, "can_manage": manageable.exists(), "host_form": host_form,
        "import_form": import_form, "sees_sites": can(request.user, Action.VIEW)})


def _import(request, form):
    data = form.cleaned_data
    text = data["file"].read().decode("utf-8", "replace")
    environment = data["environment"].name if data["environment"] else None
    try:
        if data["format"] == "csv":
            rows, group_vars = transfer.parse_csv(text, environment)
        else:
            if environment is None:
                form.add_error("environment", "Say which environment the Ansible inventory goes to.")
                return False
            rows, group_vars = transfer.parse_ansible(text, environment)
    except ValidationError as exc:
        for message in exc.messages:
            form.add_error("file", message)
        return False
    result = attempt(request, transfer.apply_import, actor(request), rows, group_vars,
                     update_existing=data["update_existing"], credential_name=data["credential"])
    if result:
        messages.success(request, f"Imported: {result['created']} created, {result['updated']} updated.")
    return bool(result)


@login_required
@require_http_methods(["GET", "POST"])
def credentials(request):
    manageable = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    form = CredentialForm(request.POST or None, environments=manageable)
    if request.method == "POST" and form.is_valid():
        if attempt(request, services.create_credential, actor(request), form=form, success="Credential stored.",
                   **form.cleaned_data):
            return redirect("inventory:credentials")
    items = list(restrict(Credential.objects.select_related("environment"), request.user, Action.VIEW))
    for item in items:
        item.can_manage = can(request.user, Action.MANAGE, item.environment_id)
    return render(request, "inventory/credentials.html", {"credentials": items, "form": form,
                                                          "can_manage": manageable.exists()})


@login_required
@require_http_methods(["GET", "POST"])
def credential_edit(request, pk):
    """Rename a credential, move it or change its user; the key is never shown (Rotate replaces it)."""
    credential = get_object_or_404(restrict(Credential.objects.all(), request.user, Action.VIEW), pk=pk)
    require_manage(request.user, credential)
    form = CredentialEditForm(request.POST or None, environments=restrict(Environment.objects.all(), request.user,
                                                                          Action.MANAGE),
                              initial={"name": credential.name, "environment": credential.environment_id,
                                       "username": credential.username})
    return form_page(request, form, services.update_credential, obj=credential, what="credential",
                     intro="The private key and passphrase are write-only: replace them with Rotate.",
                     back=reverse("inventory:credentials"), done=reverse("inventory:credentials"),
                     delete_url=reverse("inventory:credential_delete", args=[credential.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def credential_delete(request, pk):
    credential = get_object_or_404(restrict(Credential.objects.all(), request.user, Action.VIEW), pk=pk)
    hosts = list(credential.hosts.order_by("name").values_list("name", flat=True)[:20])
    consequences = ["its encrypted key and passphrase"]
    if hosts:
        consequences.append(f"nothing while hosts use it: {', '.join(hosts)} (change their credential first)")
    return confirm_delete(request, credential, services.delete_credential, what="credential",
                          done=reverse("inventory:credentials"), back=reverse("inventory:credentials"),
                          consequences=consequences)


@login_required
@require_http_methods(["GET", "POST"])
def credential_rotate(request, pk):
    credential = get_object_or_404(restrict(Credential.objects.all(), request.user, Action.MANAGE), pk=pk)
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if attempt(request, services.rotate_credential, actor(request), credential, form=form,
                   success="Key replaced.", **form.cleaned_data):
            return redirect("inventory:credentials")
    return render(request, "inventory/rotate.html", {"credential": credential, "form": form})


def latest_compliance(hosts_queryset):
    """The newest result of each check on each host: {(host_id, check): result}."""
    newest = (ComplianceResult.objects.filter(host__in=hosts_queryset).values("host_id", "name")
              .annotate(last=Max("time")))
    wanted = {(row["host_id"], row["name"], row["last"]) for row in newest}
    results = ComplianceResult.objects.filter(host__in=hosts_queryset, time__in={w[2] for w in wanted})
    return {(r.host_id, r.name): r for r in results if (r.host_id, r.name, r.time) in wanted}


@login_required
def host_detail(request, pk):
    host = get_object_or_404(restrict(Host.objects.select_related("environment", "credential", "site"), request.user,
                                      Action.VIEW), pk=pk)
    compliance = sorted(latest_compliance(Host.objects.filter(pk=host.pk)).values(), key=lambda r: r.name)
    # The jobs on this host come from the jobs app's template tag (object_jobs): jobs sit above inventory.
    context = {
        "host": host, "facts": host.facts, "changes": host.facts_changes.all()[:20], "compliance": compliance,
        "can_operate": can(request.user, Action.OPERATE, host.environment),
        "can_manage": can(request.user, Action.MANAGE, host.environment),
    }
    return render(request, "inventory/host_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def host_edit(request, pk):
    """Change a host: where it is reached, its credential, its site (and so its jobs' queue)."""
    host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=pk)
    require_manage(request.user, host)
    form = HostForm(request.POST or None, environments=restrict(Environment.objects.all(), request.user, Action.MANAGE),
                    credentials=restrict(Credential.objects.all(), request.user, Action.MANAGE),
                    sites=restrict(Site.objects.all(), request.user, Action.VIEW),
                    # The instance only for validation (its own name is no clash); the service re-reads it.
                    instance=Host.objects.get(pk=host.pk), initial={"tags": ", ".join(host.tags)})
    return form_page(request, form, services.update_host, obj=host, what="host",
                     back=reverse("inventory:host", args=[host.pk]), done=reverse("inventory:host", args=[host.pk]))


@login_required
def sites(request):
    """Sites and their queues; administrators of all environments add, change and remove them."""
    form = SiteForm(request.POST or None)
    can_manage = can(request.user, Action.MANAGE)  # global objects: administrators of all environments
    if request.method == "POST":
        require_manage(request.user, Site())
        if form.is_valid() and attempt(request, services.create_site, actor(request), form=form,
                                       success="Site added.", **form.cleaned_data):
            return redirect("inventory:sites")
    items = restrict(Site.objects.annotate(host_count=Count("hosts")), request.user, Action.VIEW)
    return render(request, "inventory/sites.html", {"sites": items, "form": form, "can_manage": can_manage})


@login_required
@require_http_methods(["GET", "POST"])
def site_edit(request, pk):
    site = get_object_or_404(restrict(Site.objects.all(), request.user, Action.VIEW), pk=pk)
    require_manage(request.user, site)
    form = SiteForm(request.POST or None, instance=Site.objects.get(pk=site.pk))  # a copy: the service re-reads
    return form_page(request, form, services.update_site, obj=site, what="site",
                     intro="Renaming a site moves its hosts' next jobs to the new queue site.<name>: start workers "
                           "on it first. Jobs already queued keep their queue.",
                     back=reverse("inventory:sites"), done=reverse("inventory:sites"),
                     delete_url=reverse("inventory:site_delete", args=[site.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def site_delete(request, pk):
    site = get_object_or_404(restrict(Site.objects.all(), request.user, Action.VIEW), pk=pk)
    hosts = list(site.hosts.order_by("name").values_list("name", flat=True)[:20])
    consequences = [f"nothing while hosts are on it: {', '.join(hosts)} (move them first)"] if hosts else []
    return confirm_delete(request, site, services.delete_site, what="site", done=reverse("inventory:sites"),
                          back=reverse("inventory:sites"), consequences=consequences)


@login_required
@require_POST
def accept_host_key(request, pk):
    host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=pk)
    attempt(request, services.accept_host_key, actor(request), host, success="New host key accepted and pinned.")
    return redirect("inventory:host", pk=host.pk)


@login_required
def compliance(request):
    """Compliance per environment: each host's newest result of each check."""
    environments = restrict(Environment.objects.all(), request.user, Action.VIEW)
    chosen = environments.filter(name=request.GET.get("environment", "")).first() or environments.first()
    hosts_qs = Host.objects.filter(environment=chosen).order_by("name") if chosen else Host.objects.none()
    latest = latest_compliance(hosts_qs)
    checks = sorted({name for _, name in latest})
    rows = [{"host": h, "cells": [latest.get((h.pk, c)) for c in checks]} for h in hosts_qs]
    failing = sum(1 for r in latest.values() if r.passed is False)
    return render(request, "inventory/compliance.html", {"environments": environments, "chosen": chosen,
                                                         "checks": checks, "rows": rows, "failing": failing})
