"""Pages of Swarm services and stacks: lists, a service with its tasks live and its scale, update,
rollback and load-balancing forms, stacks with their Compose editor, diff, deploy and remove."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can, restrict
from ops_portal.core.web import actor, attempt, paginate

from . import services, specs
from .choices import EngineState
from .filtersets import ServiceFilterSet
from .forms import BalanceForm, ScaleForm, SpecForm, StackForm, UpdateForm
from .models import Container, Engine, Node, Service, Stack
from .views import _query


def _job_page(job):
    return redirect("jobs:detail", pk=job.pk)


def run_form(request, form, field, func, *args, success=None, **kwargs):
    """Call a service like core.web.attempt(), showing the backend's field errors of a spec or a
    Compose file ("spec.ports[0].published", "compose.services.web.image") on `field`, path named."""
    try:
        result = func(*args, **kwargs)
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
        for key, texts in errors.items():
            own = key in form.fields
            target = key if own else (field if key and key.startswith(field) else None)
            for text in texts:
                form.add_error(target, text if own or key is None else f"{key}: {text}")
        return None
    except PermissionDenied as exc:
        messages.error(request, str(exc) or "You may not do that.")
        return None
    if success:
        messages.success(request, success)
    return result


def _managers(user, action=Action.OPERATE):
    return restrict(Engine.objects.select_related("environment"), user, action).filter(swarm_role="manager")


@login_required
@require_http_methods(["GET", "POST"])
def service_list(request):
    queryset = restrict(Service.objects.select_related("engine__environment"), request.user, Action.VIEW)
    managers = _managers(request.user)
    form = SpecForm(request.POST or None, engines=managers)
    if request.method == "POST" and form.is_valid():
        job = run_form(request, form, "spec", services.create_service, actor(request), form.cleaned_data["engine"],
                       form.cleaned_data["spec"])
        if job:
            return _job_page(job)
    filterset = ServiceFilterSet(request.GET, queryset=queryset)
    page = paginate(request, filterset.qs if filterset.is_valid()
                    else queryset.none(), per_page=100)
    return render(request, "containers/services.html", {"page": page, "form": form, "query": _query(request),
                                                        "can_create": managers.exists()})


@login_required
@require_http_methods(["GET", "POST"])
def service_detail(request, pk):
    service = get_object_or_404(restrict(Service.objects.select_related("engine__environment"), request.user,
                                         Action.VIEW), pk=pk)
    policy = (service.spec or {}).get("update_config") or {}
    scale_form = ScaleForm(prefix="scale", initial={"replicas": service.replicas_desired})
    update_form = UpdateForm(prefix="update", initial={"image": services.prefilled_update(service)["image"],
                                                       **{k: v for k, v in policy.items() if v is not None}})
    balance_form = BalanceForm(prefix="balance")
    if request.method == "POST":
        what, job, me = request.POST.get("form"), None, actor(request)
        if what == "scale":
            scale_form = ScaleForm(request.POST, prefix="scale")
            if scale_form.is_valid():
                job = attempt(request, services.scale_service, me, service, scale_form.cleaned_data["replicas"],
                              form=scale_form)
        elif what == "update":
            update_form = UpdateForm(request.POST, prefix="update")
            if update_form.is_valid():
                job = attempt(request, services.update_service, me, service, update_form.values(), form=update_form)
        elif what == "image-update":
            job = attempt(request, services.update_service, me, service, services.prefilled_update(service))
        elif what == "balance":
            balance_form = BalanceForm(request.POST, prefix="balance")
            if balance_form.is_valid():
                job = attempt(request, services.check_balance, me, service, **balance_form.cleaned_data)
        elif what == "rollback":
            job = attempt(request, services.rollback_service, me, service)
        elif what == "remove":
            job = attempt(request, services.remove_service, me, service)
        if job:
            return _job_page(job)
    tasks = task_places(request.user, service, list(service.tasks.order_by("slot", "-timestamp")[:300]))
    return render(request, "containers/service.html", {
        "service": service, "tasks": tasks, "scale_form": scale_form, "update_form": update_form,
        "balance_form": balance_form, "can_operate": can(request.user, Action.OPERATE,
                                                          service.engine.environment_id),
        "mesh_default": specs.publish_defaults(service.engine)[0] == "ingress"})


def task_places(user, service, tasks):
    """Give each task its node's name, the inventory host of the engine on that node and its
    container, where the user may view them (three queries, however many tasks)."""
    node_ids = {t.node_id for t in tasks if t.node_id}
    names = dict(Node.objects.filter(engine=service.engine, node_id__in=node_ids).values_list("node_id", "hostname"))
    engines = {e.swarm_node_id: e for e in restrict(Engine.objects.filter(swarm_node_id__in=node_ids), user,
                                                     Action.VIEW).select_related("host")}
    containers = dict(restrict(Container.objects.filter(docker_id__in={t.container_id for t in tasks
                                                                      if t.container_id}), user, Action.VIEW)
                      .values_list("docker_id", "pk"))
    for task in tasks:
        engine = engines.get(task.node_id)
        task.node_name = names.get(task.node_id, "")
        task.node_engine = engine
        task.node_host = engine.host if engine is not None else None
        task.container_pk = containers.get(task.container_id)
    return tasks


@login_required
@require_http_methods(["GET", "POST"])
def stack_list(request):
    managers = _managers(request.user)
    form = StackForm(request.POST or None, engines=managers)
    if request.method == "POST" and form.is_valid():
        stack = run_form(request, form, "compose", services.create_stack, actor(request), success="Stack saved.",
                         **form.cleaned_data)
        if stack:
            return redirect("containers:stack", pk=stack.pk)
    stacks = restrict(Stack.objects.select_related("engine__environment"), request.user, Action.VIEW)
    return render(request, "containers/stacks.html", {"stacks": stacks, "form": form,
                                                      "can_create": managers.exists()})


@login_required
@require_http_methods(["GET", "POST"])
def stack_detail(request, pk):
    stack = get_object_or_404(restrict(Stack.objects.select_related("engine__environment"), request.user,
                                       Action.VIEW), pk=pk)
    can_operate = can(request.user, Action.OPERATE, stack.engine.environment_id)
    form = StackForm(instance=stack, engines=_managers(request.user)) if can_operate else None
    if request.method == "POST":
        what, me = request.POST.get("form"), actor(request)
        if what == "edit":
            form = StackForm(request.POST, instance=stack, engines=_managers(request.user))
            if form.is_valid() and run_form(request, form, "compose", services.update_stack, me, stack,
                                            success="Stack saved: check the diff, then deploy.",
                                            **form.cleaned_data):
                return redirect("containers:stack", pk=stack.pk)
        elif what == "deploy":
            job = attempt(request, services.deploy_stack, me, stack, prune=request.POST.get("prune") == "on")
            if job:
                return _job_page(job)
        elif what == "remove":
            job = attempt(request, services.remove_stack, me, stack)
            if job:
                return _job_page(job)
        elif what == "delete":
            if attempt(request, services.delete_stack, me, stack, success=f"Stack {stack.name} deleted."):
                return redirect("containers:stacks")
    diff, diff_error = None, ""
    try:
        diff = services.stack_diff(stack)
    except ValidationError as exc:  # a file saved before a rule changed: show why, never a 500
        diff_error = " ".join(exc.messages)
    stack_services = Service.objects.filter(engine=stack.engine, stack=stack.name).order_by("name")
    return render(request, "containers/stack.html", {
        "stack": stack, "form": form, "diff": diff, "diff_error": diff_error, "can_operate": can_operate,
        "services": stack_services, "engine_up": stack.engine.state in (EngineState.OK, EngineState.DEGRADED),
        "deployed_now": stack.deployed_hash == specs.compose_hash(stack.compose)})
