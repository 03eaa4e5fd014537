"""Swarm services and stacks as job actions: create, scale, update, roll back, remove, the
load-balancing check, stack deploy (with its diff first) and stack removal.

A change is followed until the service converged (backend wait_converged): every task state
change is an output line and a row of the target's task grid; the job succeeds only when the
service converged or its update completed, and fails with the engine's words otherwise.
"""
import json

from django.core.exceptions import ValidationError
from django.utils import timezone

from schedulers import container as backend
from schedulers.base import BackendError, CommandResult
from schedulers.container import services as service_ops
from schedulers.container import stacks as stack_ops

from . import safety, specs
from .models import Service, Stack
from .runtime import client_for, follow, refresh_service

UPDATE_FIELDS = ("parallelism", "delay", "order", "failure_action", "monitor", "max_failure_ratio")


def _spec(ctx):
    """The ServiceSpec of the job's parameters (checked again: the job may run long after launch)."""
    try:
        return backend.check_service(backend.ServiceSpec.from_dict(json.loads(ctx.params["spec"])))
    except ValueError as exc:
        raise BackendError(f"refused before anything was sent: {exc}") from None


def create_service(ctx):
    client = client_for(ctx)
    spec = _spec(ctx)
    safety.recheck(ctx, spec)
    change = service_ops.create(client, spec)
    ctx.output("stdout", f"service {spec.name} created ({change.service_id[:12]}), spec version {change.version}")
    for warning in change.warnings:
        ctx.output("stderr", f"engine warning: {warning}")
    result = follow(ctx, client, change, spec.name)
    refresh_service(ctx, client, change.service_id)
    return result


def scale(ctx):
    client = client_for(ctx)
    service = ctx.obj
    replicas = ctx.params["replicas"]
    if ctx.params.get("reason"):
        ctx.output("stdout", f"why: {ctx.params['reason']}")
    change = service_ops.scale(client, service.service_id, replicas)
    ctx.output("stdout", f"service {service.name}: scaling to {replicas} replicas (spec version {change.version})")
    result = follow(ctx, client, change, service.name)
    refresh_service(ctx, client, service.service_id)
    return result


def updated_spec(current, params):
    """The spec an update asks for: a whole spec, or the current one with a new image and update policy."""
    spec = backend.ServiceSpec.from_dict(json.loads(params["spec"])) if params.get("spec") else current
    if params.get("image"):
        spec.image = params["image"]
    overrides = {name: params[name] for name in UPDATE_FIELDS if params.get(name) not in (None, "")}
    if overrides:
        policy = spec.update_config or backend.UpdatePolicy()
        for name, value in overrides.items():
            setattr(policy, name, float(value) if name == "max_failure_ratio" else value)
        spec.update_config = policy
    return backend.check_service(spec)


def update(ctx):
    client = client_for(ctx)
    service = ctx.obj
    try:
        spec = updated_spec(service_ops.current_spec(client, service.service_id), ctx.params)
    except ValueError as exc:
        raise BackendError(f"refused before anything was sent: {exc}") from None
    safety.recheck(ctx, spec)
    change = service_ops.update(client, service.service_id, spec, force=ctx.params.get("force", False))
    policy = spec.update_config
    how = (f"parallelism {policy.parallelism}, delay {policy.delay}, {policy.order}, on failure "
           f"{policy.failure_action}") if policy else "the engine's default update policy"
    ctx.output("stdout", f"service {service.name}: updating to {spec.image} ({how}), spec version {change.version}")
    result = follow(ctx, client, change, service.name)
    refresh_service(ctx, client, service.service_id)
    return result


def rollback(ctx):
    client = client_for(ctx)
    service = ctx.obj
    change = service_ops.rollback(client, service.service_id)
    ctx.output("stdout", f"service {service.name}: rolling back to the previous spec")
    result = follow(ctx, client, change, service.name)
    refresh_service(ctx, client, service.service_id)
    return result


def remove_service(ctx):
    client = client_for(ctx)
    service = ctx.obj
    service_ops.remove(client, service.service_id)
    ctx.output("stdout", f"service {service.name} removed")
    refresh_service(ctx, client, service.service_id)
    return CommandResult(exit_code=0, changed=True)


def check_balance(ctx):
    """Send N requests to the service's published endpoints on 127.0.0.1; report which replicas answered."""
    client = client_for(ctx)
    service = ctx.obj
    found = backend.endpoints(client, service.service_id)
    ctx.output("stdout", f"service {service.name}: publish mode {found.publish_mode}, endpoint mode "
                         f"{found.endpoint_mode}, {len(found.endpoints)} endpoints: "
                         + ", ".join(f"{e.address or '127.0.0.1'}:{e.port}" for e in found.endpoints[:20]))
    report = backend.check_balance(found, ctx.params.get("requests", 20), path=ctx.params.get("path") or "/",
                                   address="127.0.0.1")
    for name, count in sorted(report.replicas.items()):
        ctx.output("stdout", f"replica {name}: {count} answers")
    for error in report.errors[:20]:
        ctx.output("stderr", error)
    running = service.replicas_running or 0
    ctx.output("stdout", f"{report.answered} of {report.requests} requests answered by {report.distinct} "
                         f"replicas ({running} running)")
    data = {"requests": report.requests, "answered": report.answered, "replicas": report.replicas,
            "distinct": report.distinct, "endpoints": report.endpoints, "errors": report.errors[:20],
            "publish_mode": found.publish_mode, "endpoint_mode": found.endpoint_mode}
    if not report.answered:
        return CommandResult(exit_code=1, error="no replica answered", data=data)
    return CommandResult(exit_code=0, changed=False, data=data)


# Stacks ------------------------------------------------------------------------------------

def _stack(runner):
    stack = Stack.objects.select_related("engine").filter(pk=runner.params["stack"],
                                                          engine__environment=runner.job.environment).first()
    if stack is None:
        raise BackendError("the stack is gone or belongs to another environment")
    runner.resources["stack"] = stack
    return stack


def prepare_deploy(runner):
    """The stack the job names, checked against the Compose text it was planned (and approved) with."""
    stack = _stack(runner)
    if specs.compose_hash(stack.compose) != runner.params["compose_hash"]:
        raise BackendError(f"stack {stack.name} changed since this job was planned: launch it again")
    try:
        runner.resources["stack_plan"] = specs.load_stack(stack)
    except ValidationError as exc:
        raise BackendError(f"stack {stack.name}: the Compose file is refused: {exc}") from None


def prepare_remove(runner):
    stack = _stack(runner)
    runner.resources["stack_services"] = list(Service.objects.filter(engine_id=stack.engine_id, stack=stack.name)
                                              .values_list("service_id", flat=True))


def describe_diff(plan):
    lines = [f"+ {name} (new)" for name in plan.added] + [f"- {name} (removed)" for name in plan.removed]
    for name, changes in sorted(plan.changed.items()):
        lines.append(f"~ {name}:")
        lines += [f"    {c.field}: {c.old!r} -> {c.new!r}" for c in changes[:50]]
    lines += [f"= {name} (unchanged)" for name in plan.unchanged]
    return lines or ["nothing to change"]


def diff_data(plan):
    return {"added": plan.added, "removed": plan.removed, "unchanged": plan.unchanged,
            "changed": {name: [{"field": c.field, "old": c.old, "new": c.new} for c in changes]
                        for name, changes in plan.changed.items()}}


def deploy_stack(ctx):
    client = client_for(ctx)
    stack, desired = ctx.resources["stack"], ctx.resources["stack_plan"]
    if stack.engine_id != ctx.obj.pk:
        raise BackendError(f"stack {stack.name} belongs to engine {stack.engine.name}")
    for spec in desired.services.values():
        safety.recheck(ctx, spec)
    plan = stack_ops.diff(stack_ops.current(client, stack.name), desired)
    for line in describe_diff(plan):
        ctx.output("stdout", line)
    result = stack_ops.deploy(client, desired, prune=ctx.params.get("prune", True))
    ctx.output("stdout", f"stack {stack.name}: created {result.created or '-'}, updated {result.updated or '-'}, "
                         f"removed {result.removed or '-'}, networks created {result.networks_created or '-'}")
    outcomes, failed = [], []
    for change in result.changes:
        outcome = follow(ctx, client, change, change.name)
        refresh_service(ctx, client, change.service_id)
        outcomes.append({"service": change.name, **outcome.data})
        if not outcome.ok:
            failed.append(outcome.error)
    stack_id, compose = stack.pk, stack.compose
    ctx.after(lambda: Stack.objects.filter(pk=stack_id).update(deployed_hash=specs.compose_hash(compose),
                                                               deployed_at=timezone.now()))
    data = {"diff": diff_data(plan), "services": outcomes}
    if failed:
        return CommandResult(exit_code=1, error="; ".join(failed), changed=True, data=data)
    return CommandResult(exit_code=0, changed=bool(result.changes or result.removed), data=data)


def remove_stack(ctx):
    client = client_for(ctx)
    stack = ctx.resources["stack"]
    removed = stack_ops.remove(client, stack.name)
    ctx.output("stdout", f"stack {stack.name}: removed services {removed['services'] or '-'}, networks "
                         f"{removed['networks'] or '-'}")
    for service in ctx.resources.get("stack_services", []):
        refresh_service(ctx, client, service)
    stack_id = stack.pk
    ctx.after(lambda: Stack.objects.filter(pk=stack_id).update(deployed_hash="", deployed_at=None))
    return CommandResult(exit_code=0, changed=bool(removed["services"]), data=removed)
