"""Program pages: programs fleet-wide and per host, one program with its limits, restart history,
logs (tail, live follow, search) and actions; forms for portal-managed programs. Every button
launches a job through services (or shows why it cannot)."""
import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, restrict, scope_for
from ops_portal.core.web import actor, attempt, paginate
from ops_portal.inventory.models import Host
from ops_portal.jobs.models import Job

from . import services
from .choices import OPERATIONS, SIGNALS, Manager, ProgramState
from .forms import LogsForm, NewProgramForm, SpecForm
from .models import HostManager, Program

PAGE_SIZE = 50


def _programs(user):
    return restrict(Program.objects.select_related("host__environment"), user, Action.VIEW)


def _hosts(user, action=Action.VIEW):
    return restrict(Host.objects.select_related("environment"), user, action)


def _annotate(user, programs):
    """Each program's offered operations (and why not), and whether the user may operate it."""
    programs = list(programs)
    managers = {(m.host_id, m.manager): m for m in HostManager.objects.filter(
        host_id__in={p.host_id for p in programs})}
    operate = scope_for(user, Action.OPERATE)
    for program in programs:
        manager = managers.get((program.host_id, program.manager))
        program.manager_row = manager
        program.can_operate = operate.allows(program.host.environment_id)
        refusals = dict(services.offered(program, manager)) if manager is not None else {
            op: "this host's managers have not been checked yet: refresh its programs" for op in OPERATIONS}
        program.operations = [(op, refusals[op]) for op in ("start", "stop", "restart")]
        program.refusals = refusals
    return programs


@login_required
def home(request):
    programs = _programs(request.user)
    filters, query = {}, {}
    host = request.GET.get("host", "")
    if host.isdigit():
        filters["host"] = get_object_or_404(_hosts(request.user), pk=int(host))
        programs = programs.filter(host=filters["host"])
        query["host"] = host
    manager = request.GET.get("manager", "")
    if manager in Manager.values:
        programs = programs.filter(manager=manager)
        filters["manager"] = query["manager"] = manager
    state = request.GET.get("state", "")
    if state in ProgramState.values:
        programs = programs.filter(state=state)
        filters["state"] = query["state"] = state
    if request.GET.get("crash_loop") == "1":
        programs = programs.filter(crash_loop=True)
        filters["crash_loop"], query["crash_loop"] = True, "1"
    text = request.GET.get("q", "").strip()[:100]
    if text and "\x00" not in text:
        programs = programs.filter(name__icontains=text)
        filters["q"] = query["q"] = text
    # Crash loops first, then by name and host: read in the order of program_list_order (a sort by
    # host name joined in was 110 ms at 20,000 programs); the hosts' facts are not shown.
    page = paginate(request, programs.defer("host__facts", "host__variables")
                    .order_by("-crash_loop", "name", "host_id", "manager"), PAGE_SIZE)
    page.object_list = _annotate(request.user, page.object_list)
    managers = HostManager.objects.filter(host=OuterRef("pk"))
    hosts = (_hosts(request.user).defer("facts", "variables")
             .annotate(checked=Exists(managers))
             .exclude(Exists(managers.filter(available=True))).order_by("name"))
    candidates = list(hosts[:200])
    without = [h for h in candidates if h.checked]
    unchecked = [h for h in candidates if not h.checked]
    manage = scope_for(request.user, Action.MANAGE)
    for h in without:
        h.can_install = manage.allows(h.environment_id) and h.transport != "local"
    environments = Environment.objects.filter(
        pk__in=_hosts(request.user, Action.OPERATE).values("environment_id")).order_by("name")
    return render(request, "programs/home.html", {
        "page": page, "filters": filters, "query": urlencode(query), "without": without, "unchecked": unchecked,
        "states": ProgramState.choices, "managers": Manager.choices, "host": filters.get("host"),
        "refresh_environments": list(environments), "can_create": not manage.empty,
    })


@login_required
def detail(request, pk):
    program = get_object_or_404(_programs(request.user), pk=pk)
    (program,) = _annotate(request.user, [program])
    environment_id = program.host.environment_id
    can_manage = can(request.user, Action.MANAGE, environment_id)
    log_job = None
    if request.GET.get("job", "").isdigit():
        log_job = restrict(Job.objects.filter(pk=int(request.GET["job"]), targets__kind="program",
                                              targets__ref_id=program.pk), request.user, Action.VIEW).first()
    limits = [{"name": name, **value} for name, value in sorted((program.limits or {}).items())]
    return render(request, "programs/detail.html", {
        "program": program, "manager": program.manager_row, "events": program.events.all()[:50],
        "limits": limits, "can_operate": program.can_operate, "can_manage": can_manage,
        "operations": [(op, program.refusals[op]) for op in OPERATIONS], "signals": SIGNALS,
        "logs_form": LogsForm(), "log_job": log_job, "logs_refusal": services.refusal(program, "logs",
                                                                                   program.manager_row)
        if program.manager_row else "refresh the host's programs first",
        "apply_refusal": services.refusal(program, "apply", program.manager_row) if program.manager_row else "",
        "spec_rows": [(key, value if isinstance(value, str) else json.dumps(value))
                      for key, value in sorted((program.spec or {}).items())],
        "memory_stop": "memory limit" in (program.exit_reason or ""),
    })


@login_required
def new(request):
    hosts = _hosts(request.user, Action.MANAGE).order_by("name")
    form = NewProgramForm(request.POST or None, hosts=hosts,
                          initial={"host": request.GET.get("host")} if request.GET.get("host", "").isdigit() else {})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        program = attempt(request, services.create_program, actor(request), host=data["host"],
                          manager=data["manager"], name=data["name"], spec=form.spec(),
                          description=data["description"], form=form)
        if program:
            messages.success(request, f"Program {program.name} saved.")
            return _after_save(request, program)
    return render(request, "programs/form.html", {"form": form, "program": None})


@login_required
def edit(request, pk):
    program = get_object_or_404(_programs(request.user), pk=pk)
    form = SpecForm(request.POST or None, initial=SpecForm.initial_from(program))
    if request.method == "POST" and form.is_valid():
        saved = attempt(request, services.update_program, actor(request), program, spec=form.spec(),
                        description=form.cleaned_data["description"], form=form)
        if saved:
            messages.success(request, f"Spec of {program.name} saved.")
            return _after_save(request, saved)
    return render(request, "programs/form.html", {"form": form, "program": program})


def _after_save(request, program):
    if request.POST.get("then") == "apply":
        job = attempt(request, services.launch_apply, actor(request), program)
        if job:
            messages.success(request, f"Apply launched: job #{job.pk}.")
            return redirect("jobs:detail", pk=job.pk)
    return redirect("programs:detail", pk=program.pk)


@login_required
@require_POST
def operate(request, pk):
    program = get_object_or_404(_programs(request.user), pk=pk)
    operation = request.POST.get("operation", "")
    count = request.POST.get("count", "")
    job = attempt(request, services.launch_operation, actor(request), program, operation,
                  signal=request.POST.get("signal") or None, count=int(count) if count.isdigit() else None)
    if job:
        messages.success(request, f"{operation.capitalize()} of {program.name} launched: job #{job.pk}.")
    if request.POST.get("back") == "list":
        return redirect("programs:home")
    if job:
        return redirect("jobs:detail", pk=job.pk)
    return redirect("programs:detail", pk=program.pk)


@login_required
@require_POST
def configure(request, pk):
    """Apply or remove a portal-managed program (administrators)."""
    program = get_object_or_404(_programs(request.user), pk=pk)
    what = request.POST.get("what")
    if what == "apply":
        job = attempt(request, services.launch_apply, actor(request), program)
    elif what == "remove":
        job = attempt(request, services.remove_program, actor(request), program)
        if job is True:  # never reached its host: forgotten at once
            messages.success(request, f"{program.name} forgotten (it was never applied).")
            return redirect("programs:home")
    else:
        messages.error(request, "Say what to do: apply or remove.")
        job = None
    if job:
        messages.success(request, f"{what.capitalize()} launched: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    return redirect("programs:detail", pk=program.pk)


@login_required
@require_POST
def logs(request, pk):
    program = get_object_or_404(_programs(request.user), pk=pk)
    form = LogsForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("programs:detail", pk=program.pk)
    data = form.cleaned_data
    job = attempt(request, services.launch_logs, actor(request), program, mode=data["mode"], stream=data["stream"],
                  lines=data["lines"], duration=data.get("duration") or 300, text=data.get("text") or "",
                  since=data.get("since"), until=data.get("until"))
    if job:
        return redirect(f"{reverse('programs:detail', args=[program.pk])}?job={job.pk}#logs")
    return redirect("programs:detail", pk=program.pk)


@login_required
@require_POST
def refresh(request):
    hosts = _hosts(request.user)
    if request.POST.get("host", "").isdigit():
        host = get_object_or_404(hosts, pk=int(request.POST["host"]))
        job = attempt(request, services.launch_refresh, actor(request), host.environment, [host])
    else:
        raw = str(request.POST.get("environment", ""))
        environment = get_object_or_404(restrict(Environment.objects.all(), request.user, Action.VIEW),
                                        pk=int(raw) if raw.isdigit() else 0)
        job = attempt(request, services.launch_refresh, actor(request), environment)
    if job:
        messages.success(request, f"Refresh launched: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    return redirect("programs:home")


@login_required
@require_POST
def install(request, host_pk):
    host = get_object_or_404(_hosts(request.user), pk=host_pk)
    job = attempt(request, services.launch_install, actor(request), host)
    if job:
        messages.success(request, f"supervisord install launched: job #{job.pk}.")
        return redirect("jobs:detail", pk=job.pk)
    return redirect(f"{reverse('programs:home')}?host={host.pk}")
