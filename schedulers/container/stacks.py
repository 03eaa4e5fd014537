"""Stacks against the engine: what runs, what a deploy would change, deploy and remove.

    stack = compose.load(text, "shop", default_publish_mode="host")
    plan = diff(current(client, "shop"), stack)        # added, changed fields, removed
    result = deploy(client, stack, prune=True)         # networks first, then services
    remove(client, "shop")

A deploy checks everything it can before changing anything (external networks exist, names
are not taken by services outside the stack, no published port is used twice); if the engine
still refuses part way, StackError says what had been applied before.
"""
import dataclasses
import time
from dataclasses import dataclass

import docker

from ..base import BackendError
from . import services as svc
from .compose import NetworkSpec, Stack, load
from .inventory import STACK_LABEL
from .validate import Errors, SpecError


class StackError(BackendError):
    """A deploy stopped part way; `applied` says what was changed before it did."""

    def __init__(self, message, applied=()):
        super().__init__(message)
        self.applied = list(applied)

    def __reduce__(self):
        return type(self), (str(self), self.applied)


@dataclass
class FieldChange:
    field: str
    old: object
    new: object


@dataclass
class StackDiff:
    added: list
    removed: list
    changed: dict  # service name -> [FieldChange]
    unchanged: list

    @property
    def empty(self):
        return not (self.added or self.removed or self.changed)


# Against the engine ------------------------------------------------------------------------

def current(client, stack_name) -> dict:
    """The stack's services as they run: {name: ServiceSpec}."""
    names = svc.network_names(client)
    rows = client.api.services(filters={"label": f"{STACK_LABEL}={stack_name}"})
    return {row["Spec"]["Name"]: svc.from_engine(row["Spec"], names) for row in rows}


def _normal(spec):
    """The spec as the engine would store and give it back (durations, sizes and CPUs normalised)."""
    return svc.from_engine(svc.to_engine(spec))


def _flat(value, prefix=""):
    """{"update_config.delay": 1, "env.A": "x", "ports": [...]}: dotted paths to leaves; lists whole."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def diff(now: dict, desired) -> StackDiff:
    """What deploying `desired` (a Stack or {name: ServiceSpec}) would change in `now`."""
    wanted = desired.services if isinstance(desired, Stack) else desired
    result = StackDiff(sorted(set(wanted) - set(now)), sorted(set(now) - set(wanted)), {}, [])
    for name in sorted(set(wanted) & set(now)):
        old, new = _flat(_normal(now[name])), _flat(_normal(wanted[name]))
        changes = [FieldChange(key, old.get(key), new.get(key)) for key in sorted(set(old) | set(new))
                   if old.get(key) != new.get(key)]
        if changes:
            result.changed[name] = changes
        else:
            result.unchanged.append(name)
    return result


@dataclass
class DeployResult:
    created: list
    updated: list
    unchanged: list
    removed: list
    networks_created: list
    changes: list  # [ServiceChange] to follow with wait_converged


def _preflight(client, stack):
    errors = Errors()
    existing = {n["Name"]: n for n in client.api.networks()}
    for name, net in stack.networks.items():
        if net.external and name not in existing:
            errors.add(f"networks.{name}", f"external network {name} does not exist")
        elif not net.external and name in existing and (existing[name].get("Labels") or {}).get(STACK_LABEL) \
                != stack.name:
            errors.add(f"networks.{name}", f"network {name} exists and belongs to no stack {stack.name}")
    others = {row["Spec"]["Name"]: row for row in client.api.services()}
    published = {}
    for name, spec in stack.services.items():
        row = others.get(name)
        if row is not None and (row["Spec"].get("Labels") or {}).get(STACK_LABEL) != stack.name:
            errors.add(f"services.{name}", f"service {name} exists outside stack {stack.name}")
        for i, port in enumerate(spec.ports):
            if port.published:
                key = (port.published, port.protocol)
                if key in published:
                    errors.add(f"services.{name}.ports[{i}]", f"port {port.published} is published by "
                                                              f"{published[key]} too")
                published[key] = name
    for row in others.values():
        if (row["Spec"].get("Labels") or {}).get(STACK_LABEL) == stack.name:
            continue
        for p in (row.get("Endpoint") or {}).get("Ports") or []:
            owner = published.get((p.get("PublishedPort"), p.get("Protocol", "tcp")))
            if owner:
                errors.add(f"services.{owner}.ports", f"port {p['PublishedPort']} is published by service "
                                                      f"{row['Spec']['Name']} already")
    errors.raise_if_any()
    return existing


def deploy(client, stack: Stack, *, prune=False) -> DeployResult:
    """Create missing networks, then create or update services; prune removes services left out."""
    existing = _preflight(client, stack)
    result = DeployResult([], [], [], [], [], [])
    applied = []
    try:
        for name, net in sorted(stack.networks.items()):
            if not net.external and name not in existing:
                client.api.create_network(name, driver=net.driver, options=net.options or None,
                                          attachable=net.attachable, internal=net.internal, labels=net.labels,
                                          scope="swarm" if net.driver == "overlay" else None)
                result.networks_created.append(name)
                applied.append(f"network {name} created")
        plan = diff(current(client, stack.name), stack)
        for name in sorted(stack.services):
            if name in plan.added:
                change = svc.create(client, stack.services[name])
                result.created.append(name)
            elif name in plan.changed:
                change = svc.update(client, name, stack.services[name])
                result.updated.append(name)
            else:
                result.unchanged.append(name)
                continue
            result.changes.append(change)
            applied.append(f"service {name} {change.action}d")
        if prune:
            for name in plan.removed:
                svc.remove(client, name)
                result.removed.append(name)
                applied.append(f"service {name} removed")
    except (SpecError, BackendError, docker.errors.APIError) as exc:
        words = exc.explanation if isinstance(exc, docker.errors.APIError) else str(exc)
        done = "; ".join(applied) if applied else "nothing"
        raise StackError(f"stack {stack.name}: deploy stopped: {words}. Applied before that: {done}", applied)
    return result


def remove(client, stack_name, *, timeout=60.0, wait=True) -> dict:
    """Remove the stack's services, then its networks (volumes stay, as with `docker stack rm`).

    The engine acknowledges a network removal at once but keeps the network until the tasks
    using it have stopped; wait=True waits for that, up to timeout.
    """
    label = {"label": f"{STACK_LABEL}={stack_name}"}
    removed = {"services": [], "networks": []}
    for row in client.api.services(filters=label):
        svc.remove(client, row["ID"])
        removed["services"].append(row["Spec"]["Name"])
    deadline = time.monotonic() + timeout
    for network in client.api.networks(filters=label):
        while True:
            try:
                client.api.remove_network(network["Id"])
                removed["networks"].append(network["Name"])
                break
            except docker.errors.NotFound:
                break
            except docker.errors.APIError as exc:
                if time.monotonic() > deadline:  # still in use by tasks that are shutting down
                    raise StackError(f"stack {stack_name}: network {network['Name']} could not be removed: "
                                     f"{exc.explanation or exc}", [f"service {s} removed" for s in removed["services"]])
                time.sleep(0.25)
    while wait and client.api.networks(filters=label):
        if time.monotonic() > deadline:
            left = ", ".join(n["Name"] for n in client.api.networks(filters=label))
            raise StackError(f"stack {stack_name}: networks {left} still exist {timeout:g}s after removal",
                             [f"service {s} removed" for s in removed["services"]])
        time.sleep(0.25)
    return removed


__all__ = ["DeployResult", "FieldChange", "NetworkSpec", "Stack", "StackDiff", "StackError", "current", "deploy",
           "diff", "load", "remove"]
