"""Processes pages: fleet-wide (top by CPU and memory, search and filters, hosts and their last
scans), one host's processes (tree, search, what changed since the scan before), one process
(its facts, its owner, actions as jobs with the owning manager preferred).

Every list is paginated or bounded and costs a fixed number of queries; scans stored by jobs reach
open pages over the "processes" stream (static/js/processes.js reloads the live part).
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, restrict, scope_for
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.inventory.models import Host
from schedulers.process import control

from . import owners, queries, services
from .choices import PROCESS_ACTIONS, STATES, OwnerKind
from .filtersets import ProcessFilterSet
from .models import Process

TOP = 10
HOSTS_PER_PAGE = 50  # the host table pages by "hpage", beside the process list's "page"
ACTIONS = {"signal": "process.signal", "stop": "process.stop", "pause": "process.pause", "resume": "process.resume",
           "kill": "process.kill"}
STATES_SHOWN = sorted(STATES.items())
FILTERS = ("q", "environment", "host_name", "user", "state", "owner_kind", "owner_name", "port")


def _processes(user):
    return restrict(Process.objects.select_related("host__environment"), user, Action.VIEW)


def _filtered(request, queryset):
    params = request.GET.copy()
    for name in list(params):
        if name not in FILTERS or not params.get(name):
            params.pop(name)
    filterset = ProcessFilterSet(params, queryset=queryset)
    rows = filterset.qs if filterset.is_valid() else queryset.none()
    return filterset, rows, params.urlencode(), bool(params)


@login_required
def home(request):
    processes = _processes(request.user)
    filterset, rows, query, filtered = _filtered(request, processes)
    order = request.GET.get("order") if request.GET.get("order") in ("cpu", "memory") else "cpu"
    page = paginate(request, rows.order_by(*queries.ORDER[order]))
    hosts = queries.with_latest_scans(restrict(Host.objects.select_related("environment"), request.user, Action.VIEW)
                                      .order_by("name"))
    host_page = paginate(request, hosts, HOSTS_PER_PAGE, param="hpage")
    operable = restrict(Environment.objects.all(), request.user, Action.OPERATE).order_by("name")
    scope = scope_for(request.user, Action.OPERATE)
    for host in host_page.object_list:
        host.can_operate = scope.allows(host.environment_id)
    return render(request, "processes/home.html", {
        "page": page, "filterset": filterset, "filter_query": query,
        "query": "&".join(q for q in (query, f"order={order}") if q), "states": STATES_SHOWN,
        "filtered": filtered, "order": order, "top_cpu": queries.top(processes, "cpu", TOP),
        "top_memory": queries.top(processes, "memory", TOP), "host_page": host_page, "environments": operable,
        "owner_kinds": OwnerKind.choices[1:]})


@login_required
def host_processes(request, pk):
    host = get_object_or_404(restrict(Host.objects.select_related("environment"), request.user, Action.VIEW), pk=pk)
    scan = queries.latest_scan(host)
    filterset, rows, query, filtered = _filtered(request, Process.objects.filter(host=host).select_related("host"))
    context = {"host": host, "scan": scan, "failure": queries.last_failure(host, scan), "filterset": filterset,
               "filtered": filtered, "query": query, "can_operate": can(request.user, Action.OPERATE,
                                                                        host.environment_id),
               "owner_kinds": OwnerKind.choices[1:], "states": STATES_SHOWN}
    if filtered:
        context["page"] = paginate(request, rows.order_by("pid"))
    else:
        context["tree"] = queries.flat_tree(host)
    return render(request, "processes/host.html", context)


@login_required
def detail(request, pk):
    process = get_object_or_404(_processes(request.user).select_related("host__credential"), pk=pk)
    owner = owners.owning_program(process)
    refusal = services.refuse_local(request.user, process)
    can_operate = can(request.user, Action.OPERATE, process.host.environment_id) and not refusal
    parent = Process.objects.filter(host=process.host, pid=process.ppid).first() if process.ppid else None
    children = list(Process.objects.filter(host=process.host, ppid=process.pid).order_by("pid")[:50])
    return render(request, "processes/detail.html", {
        "process": process, "owner": owner, "program_url": owners.program_url(owner.program) if owner else None,
        "can_operate": can_operate, "refusal": refusal, "signals": control.SIGNALS, "parent": parent,
        "children": children, "scan": queries.latest_scan(process.host)})


@login_required
@require_POST
def act(request, pk):
    process = get_object_or_404(_processes(request.user), pk=pk)
    job_action = ACTIONS.get(request.POST.get("what", ""))
    if job_action not in PROCESS_ACTIONS:
        messages.error(request, "Say what to do: signal, stop, pause, resume or kill.")
        return redirect("processes:detail", pk=process.pk)
    values = {"use_manager": request.POST.get("use_manager") == "on"}
    if job_action == "process.signal":
        values["signal"] = request.POST.get("signal", "")
    if job_action == "process.stop":
        values["grace_seconds"] = request.POST.get("grace_seconds", "10")
    job = attempt(request, services.launch_action, actor(request), process, job_action, values)
    if job:
        messages.success(request, f"{job.name}: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    return redirect("processes:detail", pk=process.pk)


@login_required
@require_POST
def scan(request):
    """Scan one host (host=<id>) or every enabled host of an environment (environment=<id>)."""
    back = request.POST.get("back") or ""
    host_id, environment_id = request.POST.get("host", ""), request.POST.get("environment", "")
    if host_id.isdigit():
        host = restrict(Host.objects.select_related("environment"), request.user, Action.VIEW).filter(
            pk=int(host_id)).first()
        job = attempt(request, services.launch_scan, actor(request), host.environment, [host]) if host else None
        if host is None:
            messages.error(request, "No host with this id that you may see.")
    elif environment_id.isdigit():
        environment = restrict(Environment.objects.all(), request.user, Action.VIEW).filter(
            pk=int(environment_id)).first()
        job = attempt(request, services.launch_scan, actor(request), environment) if environment else None
        if environment is None:
            messages.error(request, "No environment with this id that you may see.")
    else:
        job = None
        messages.error(request, "Say what to scan: a host or an environment.")
    if job:
        messages.success(request, f"{job.name}: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    if back == "host" and host_id.isdigit():
        return redirect("processes:host", pk=int(host_id))
    return redirect("processes:home")
