"""Everything people change at the container level: engines, stacks and allowed host paths
(audited, decided before anything is written), and the jobs that act on containers, services,
stacks and engines (launched through the jobs engine: approval policies, leases, audit).

Specs and Compose files are checked before a job exists (400 with field errors); privileged
specs are refused to non-administrators before a job exists (403 naming the feature, safety.py).
"""
import dataclasses
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError

from ops_portal.accounts.choices import Action
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record
from ops_portal.inventory.choices import Transport as HostTransport
from ops_portal.jobs.launch import launch_adhoc
from schedulers.container.validate import SpecError

from . import engines as engine_rows
from . import safety, specs, swarm
from .choices import CONTAINER_ACTIONS, Transport
from .models import AllowedHostPath, Container, Engine, Service, Stack

# Engines -----------------------------------------------------------------------------------


def _authorize_engine(authority, engine, m2m, before):
    """The engine's socket on the portal's machine, or an engine on a host with the local transport,
    is root on the portal's machine: only administrators of all environments register, change or
    remove such an engine (as for local hosts)."""
    local = engine.transport == Transport.UNIX or (engine.host_id and engine.host.transport == HostTransport.LOCAL)
    was_local = before is not None and before.get("transport") == Transport.UNIX
    if (local or was_local) and not authority.everywhere(Action.MANAGE):
        raise PermissionDenied(f"Only administrators of all environments manage engine {engine.name}: it is "
                               "reached through the portal's own machine.")


def create_engine(actor, **fields):
    return create_object(actor, Engine, fields, authorize=_authorize_engine)


def update_engine(actor, engine, **fields):
    if "tls_key" in fields and not fields["tls_key"]:
        fields.pop("tls_key")  # an empty key field keeps the stored key (it is never shown)
    return update_object(actor, engine, fields, authorize=_authorize_engine)


def delete_engine(actor, engine):
    try:
        with transaction.atomic():
            delete_object(actor, engine, authorize=_authorize_engine)
    except ProtectedError:
        raise ValidationError({"engine": [f"Engine {engine.name} still has stacks or autoscaling policies: delete "
                                          "them first."]}) from None


def test_engine(actor, engine):
    """Connect, probe and store the engine's state now (administrators); audited."""
    actor.authority.require_on(Action.MANAGE, engine)
    status = engine_rows.check(engine)
    with transaction.atomic():
        record(actor, "engine.check", engine, extra={"state": status.state, "message": status.message[:500]})
    return status


# Allowed host paths -------------------------------------------------------------------------

def create_allowed_path(actor, **fields):
    return create_object(actor, AllowedHostPath, fields)


def update_allowed_path(actor, allowed, **fields):
    return update_object(actor, allowed, fields)


def delete_allowed_path(actor, allowed):
    delete_object(actor, allowed)


# Stacks ------------------------------------------------------------------------------------

def _authorize_stack(actor):
    """A stack is checked as it would be deployed: its Compose file must load, and a privileged one is
    written only by administrators of the environment."""
    def authorize(authority, stack, m2m, before):
        desired = specs.load_stack(stack)
        safety.decide(actor, stack.engine.environment, desired.services.values(), what=f"stack {stack.name}")
    return authorize


def create_stack(actor, **fields):
    return create_object(actor, Stack, fields, action=Action.OPERATE, authorize=_authorize_stack(actor))


def update_stack(actor, stack, **fields):
    return update_object(actor, stack, fields, action=Action.OPERATE, authorize=_authorize_stack(actor))


def delete_stack(actor, stack):
    if stack.deployed_hash:
        raise ValidationError({"stack": [f"Stack {stack.name} is deployed: remove it from its engine first."]})
    delete_object(actor, stack, action=Action.OPERATE)


def stack_diff(stack):
    """What deploying the stack would change, against the services the watcher last saw (no engine call)."""
    desired = specs.load_stack(stack)
    now = {}
    for service in Service.objects.filter(engine_id=stack.engine_id, stack=stack.name):
        spec = specs.stored_spec(service)
        if spec is not None:
            now[service.name] = spec
    plan = swarm.stack_ops.diff(now, desired)
    return {**swarm.diff_data(plan), "lines": swarm.describe_diff(plan)}


# Jobs --------------------------------------------------------------------------------------

def _launch(actor, environment, action, values, selector, name, strategy=None, approval=None):
    return launch_adhoc(actor, environment=environment, action=action, values=values, selector=selector,
                        strategy=strategy, name=name[:200], predefined=True, approval=approval)


def _one_environment(objects, what):
    if not objects:
        raise ValidationError({what: ["Choose at least one."]})
    if len({obj.engine.environment_id for obj in objects}) != 1:
        raise ValidationError({what: ["Choose objects of one environment per job."]})
    return objects[0].engine.environment


def argv_of(value):
    """An argument vector from JSON text or a list; ValidationError on "argv" if it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError({"argv": ['Give the command as a JSON list: ["ls", "-l"].']}) from None
    if not isinstance(value, list) or not value or len(value) > 256 or not all(
            isinstance(a, str) and "\x00" not in a and len(a) <= 8192 for a in value):
        raise ValidationError({"argv": ["Give a non-empty list of at most 256 texts (an argument vector)."]})
    return value


def launch_containers(actor, action, containers, values=None, *, strategy=None):
    """One job of `action` on the given containers (bulk: many targets, the strategy's batches)."""
    if action not in CONTAINER_ACTIONS:
        raise ValidationError({"action": [f"Choose one of {', '.join(CONTAINER_ACTIONS)}."]})
    containers = list(containers)
    environment = _one_environment(containers, "containers")
    values = dict(values or {})
    if action == "container.exec":
        values["argv"] = json.dumps(argv_of(values.get("argv")))
    names = ", ".join(c.name for c in containers[:3]) + (f" and {len(containers) - 3} more" if len(containers) > 3
                                                          else "")
    return _launch(actor, environment, action, values, {"kind": "container", "ids": [str(c.pk) for c in containers]},
                   f"{action.split('.')[1].capitalize()} {names}", strategy)


def _engine_selector(engine):
    return {"kind": "engine", "ids": [str(engine.pk)]}


def _swarm_manager(engine):
    if not engine.is_manager:
        raise ValidationError({"engine": [f"Engine {engine.name} is not a Swarm manager (swarm role: "
                                          f"{engine.get_swarm_role_display().lower()}; state {engine.state})."]})


def create_service(actor, engine, spec_data):
    """Launch a service.create job for a spec written in the portal (checked now; privileged: admins)."""
    spec = specs.service_spec(spec_data, engine)
    _swarm_manager(engine)
    if Service.objects.filter(engine=engine, name=spec.name).exists():
        raise ValidationError({"spec.name": [f"A service named {spec.name} runs on {engine.name} already."]})
    safety.decide(actor, engine.environment, [spec], what=f"service {spec.name}")
    return _launch(actor, engine.environment, "service.create", {"spec": json.dumps(dataclasses.asdict(spec))},
                   _engine_selector(engine), f"Create service {spec.name}")


def create_container(actor, engine, spec_data):
    spec = specs.container_spec(spec_data)
    if spec.name and Container.objects.filter(engine=engine, name=spec.name).exists():
        raise ValidationError({"spec.name": [f"A container named {spec.name} exists on {engine.name} already."]})
    safety.decide(actor, engine.environment, [spec], what=f"container {spec.name or spec.image}")
    return _launch(actor, engine.environment, "container.create", {"spec": json.dumps(dataclasses.asdict(spec))},
                   _engine_selector(engine), f"Create container {spec.name or spec.image}")


def _service_selector(service):
    return {"kind": "service", "ids": [str(service.pk)]}


def scale_service(actor, service, replicas, *, reason="", name=None, approval=None):
    """Launch service.scale. `reason` is shown on the job and to approvers; `approval` (an approvals
    Requirement) asks for approval on top of the environment's policies (autoscaling's limit)."""
    if service.mode != "replicated":
        raise ValidationError({"replicas": [f"Service {service.name} is {service.mode or 'not replicated'}: only "
                                            "replicated services scale."]})
    values = {"replicas": replicas, **({"reason": reason} if reason else {})}
    return _launch(actor, service.engine.environment, "service.scale", values, _service_selector(service),
                   name or f"Scale {service.name} to {replicas}", approval=approval)


def update_service(actor, service, values):
    """Launch service.update: a new image or whole spec, and/or update policy fields; checked on the
    spec as it would be (the stored spec with the changes) before the job exists."""
    values = {k: v for k, v in values.items() if v not in (None, "")}
    if isinstance(values.get("spec"), dict):
        values["spec"] = json.dumps(values["spec"])
    if not (values.get("image") or values.get("spec") or values.get("force")):
        raise ValidationError({"image": ["Give a new image or spec, or force a restart of the tasks."]})
    current = specs.stored_spec(service)
    if current is None and not values.get("spec"):
        raise ValidationError({"service": [f"Service {service.name} has not been read from its engine yet."]})
    if values.get("spec"):
        parsed = specs.service_spec(values["spec"], service.engine)
        if parsed.name != service.name:
            raise ValidationError({"spec.name": ["A service cannot be renamed by an update."]})
        values["spec"] = json.dumps(dataclasses.asdict(parsed))
    try:
        would_be = swarm.updated_spec(current, values)
    except SpecError as exc:
        raise specs.field_errors(exc, "spec") from None
    safety.decide(actor, service.engine.environment, [would_be], what=f"this update of {service.name}")
    what = f"to {values['image']}" if values.get("image") else ("with a new spec" if values.get("spec")
                                                                 else "(tasks restarted)")
    return _launch(actor, service.engine.environment, "service.update", values, _service_selector(service),
                   f"Update {service.name} {what}")


def prefilled_update(service):
    """The update an image-update badge offers: the service's tag, again (the engine resolves it)."""
    return {"image": (service.image_update or {}).get("reference") or service.image.partition("@")[0]}


def rollback_service(actor, service):
    return _launch(actor, service.engine.environment, "service.rollback", {}, _service_selector(service),
                   f"Roll back {service.name}")


def remove_service(actor, service):
    return _launch(actor, service.engine.environment, "service.remove", {}, _service_selector(service),
                   f"Remove service {service.name}")


def check_balance(actor, service, requests=20, path="/"):
    return _launch(actor, service.engine.environment, "service.check_balance", {"requests": requests, "path": path},
                   _service_selector(service), f"Check load balancing of {service.name}")


def deploy_stack(actor, stack, *, prune=True):
    """Launch stack.deploy of the stack as it is now (its Compose hash pins the plan an approver sees)."""
    desired = specs.load_stack(stack)
    _swarm_manager(stack.engine)
    safety.decide(actor, stack.engine.environment, desired.services.values(), what=f"stack {stack.name}")
    return _launch(actor, stack.engine.environment, "stack.deploy",
                   {"stack": stack.pk, "compose_hash": specs.compose_hash(stack.compose), "prune": prune},
                   _engine_selector(stack.engine), f"Deploy stack {stack.name}")


def remove_stack(actor, stack):
    return _launch(actor, stack.engine.environment, "stack.remove", {"stack": stack.pk},
                   _engine_selector(stack.engine), f"Remove stack {stack.name}")
