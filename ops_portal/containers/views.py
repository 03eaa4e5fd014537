"""Pages of the container level: containers (with engines), a container, engines, allowed host paths.
Services and stacks are in swarm_views.py. Pages read through the permission layer; every change
goes through services.py (jobs for everything that touches an engine)."""
import json

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, restrict
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.inventory.models import Host, Site

from . import services
from .choices import EngineState
from .filtersets import ContainerFilterSet
from .forms import AllowedHostPathForm, BulkForm, EngineForm, ExecForm, LogsForm
from .models import AllowedHostPath, Container, Engine, Image, Network, Node, Volume

LIFECYCLE = ("start", "stop", "restart", "recreate", "pause", "unpause", "kill", "remove", "stats")


def _query(request):
    """The page's filters, for the pager's links."""
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


def _job_page(job):
    return redirect("jobs:detail", pk=job.pk)


def visible_engines(user):
    return restrict(Engine.objects.select_related("environment", "host__site", "site"), user, Action.VIEW)


@login_required
@require_http_methods(["GET", "POST"])
def home(request):
    """Engines with their health, and every container the user may see: filters, search, bulk actions."""
    containers = restrict(Container.objects.select_related("engine__environment"), request.user, Action.VIEW)
    bulk = BulkForm(request.POST or None)
    if request.method == "POST" and bulk.is_valid():
        ids = [int(v) for v in request.POST.getlist("ids") if v.isdigit()]
        chosen = list(containers.filter(pk__in=ids))
        operation = f"container.{bulk.cleaned_data['operation']}"
        job = attempt(request, services.launch_containers, actor(request), operation, chosen)
        if job:
            return _job_page(job)
    filterset = ContainerFilterSet(request.GET, queryset=containers)
    page = paginate(request, filterset.qs if filterset.is_valid()
                    else containers.none(), per_page=100)
    return render(request, "containers/home.html", {
        "engines": visible_engines(request.user), "page": page, "filterset": filterset, "bulk": bulk,
        "can_operate": restrict(Environment.objects.all(), request.user, Action.OPERATE).exists(),
        "can_manage": restrict(Environment.objects.all(), request.user, Action.MANAGE).exists(),
        "query": _query(request), "states": ["running", "exited", "paused", "restarting", "created", "dead"]})


@login_required
@require_http_methods(["GET", "POST"])
def container_detail(request, pk):
    container = get_object_or_404(restrict(Container.objects.select_related("engine__environment", "host"),
                                           request.user, Action.VIEW), pk=pk)
    logs_form = LogsForm(prefix="logs")
    exec_form = ExecForm(prefix="exec")
    if request.method == "POST":
        what = request.POST.get("form", "")
        job = None
        if what in LIFECYCLE:
            values = {"samples": 5} if what == "stats" else {}
            job = attempt(request, services.launch_containers, actor(request), f"container.{what}", [container],
                          values)
        elif what == "logs":
            logs_form = LogsForm(request.POST, prefix="logs")
            if logs_form.is_valid():
                values = {k: v for k, v in logs_form.cleaned_data.items() if v is not None}
                job = attempt(request, services.launch_containers, actor(request), "container.logs", [container],
                              values, form=logs_form)
        elif what == "exec":
            exec_form = ExecForm(request.POST, prefix="exec")
            if exec_form.is_valid():
                values = {"argv": json.dumps(exec_form.cleaned_data["argv"])}
                if exec_form.cleaned_data["user"]:
                    values["user"] = exec_form.cleaned_data["user"]
                job = attempt(request, services.launch_containers, actor(request), "container.exec", [container],
                              values, form=exec_form)
        if job:
            return _job_page(job)
    return render(request, "containers/container.html", {
        "container": container, "logs_form": logs_form, "exec_form": exec_form,
        "can_operate": can(request.user, Action.OPERATE, container.engine.environment_id),
        "lifecycle": LIFECYCLE})


@login_required
@require_http_methods(["GET", "POST"])
def engines(request):
    manageable = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    hosts = restrict(Host.objects.all(), request.user, Action.MANAGE)
    form = EngineForm(request.POST or None, request.FILES or None, environments=manageable, hosts=hosts,
                      sites=Site.objects.all())
    if request.method == "POST" and form.is_valid():
        engine = attempt(request, services.create_engine, actor(request), form=form, success="Engine registered.",
                         **form.service_fields())
        if engine:
            return redirect("containers:engine", pk=engine.pk)
    return render(request, "containers/engines.html", {"engines": visible_engines(request.user), "form": form,
                                                       "can_manage": manageable.exists()})


@login_required
@require_http_methods(["GET", "POST"])
def engine_detail(request, pk):
    engine = get_object_or_404(visible_engines(request.user), pk=pk)
    can_manage = can(request.user, Action.MANAGE, engine.environment_id)
    manageable = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    hosts = restrict(Host.objects.all(), request.user, Action.MANAGE)
    sites = Site.objects.all()
    form = EngineForm(instance=engine, environments=manageable, hosts=hosts, sites=sites) if can_manage else None
    if request.method == "POST":
        what = request.POST.get("form")
        if what == "test":
            status = attempt(request, services.test_engine, actor(request), engine)
            if status:
                return redirect("containers:engine", pk=engine.pk)
        elif what == "delete":
            if attempt(request, services.delete_engine, actor(request), engine, success="Engine removed."):
                return redirect("containers:engines")
        elif what == "edit":
            form = EngineForm(request.POST, request.FILES or None, instance=engine, environments=manageable,
                              hosts=hosts, sites=sites)
            if form.is_valid() and attempt(request, services.update_engine, actor(request), engine, form=form,
                                           success="Engine saved.", **form.service_fields()):
                return redirect("containers:engine", pk=engine.pk)
    return render(request, "containers/engine.html", {
        "engine": engine, "form": form, "can_manage": can_manage, "down": engine.state not in (
            EngineState.OK, EngineState.DEGRADED),
        "nodes": Node.objects.filter(engine=engine)[:200], "images": Image.objects.filter(engine=engine)[:500],
        "networks": Network.objects.filter(engine=engine)[:500], "volumes": Volume.objects.filter(engine=engine)[:500],
        "containers": engine.containers.count(), "services": engine.services.count()})


@login_required
@require_http_methods(["GET", "POST"])
def allowed_paths(request):
    manageable = restrict(Environment.objects.all(), request.user, Action.MANAGE)
    form = AllowedHostPathForm(request.POST or None, environments=manageable)
    if request.method == "POST" and request.POST.get("form") == "add" and form.is_valid():
        if attempt(request, services.create_allowed_path, actor(request), form=form, success="Path allowed.",
                   **form.cleaned_data):
            return redirect("containers:allowed_paths")
    items = restrict(AllowedHostPath.objects.select_related("environment"), request.user, Action.VIEW)
    return render(request, "containers/allowed_paths.html", {"items": items, "form": form,
                                                             "can_manage": manageable.exists()})


@login_required
@require_POST
def allowed_path_delete(request, pk):
    item = get_object_or_404(restrict(AllowedHostPath.objects.all(), request.user, Action.VIEW), pk=pk)
    attempt(request, services.delete_allowed_path, actor(request), item, success=f"{item.path} no longer allowed.")
    return redirect(reverse("containers:allowed_paths"))
