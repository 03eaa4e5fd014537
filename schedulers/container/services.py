"""Swarm services: create, scale, update, roll back and remove, from checked ServiceSpecs.

Every change returns a ServiceChange, which wait_converged (convergence.py) follows. Specs are
checked (specs.check_service) and compared with the engine (name taken, published ports in
use, host-mode ports on too few nodes) before anything is sent; what the engine still refuses
raises ServiceError with its words.

Specs are sent whole (the engine's Spec JSON from to_engine) rather than merged field by
field, so what runs is exactly the ServiceSpec, and from_engine() reads it back for diffs.
"""
import copy
from dataclasses import dataclass

import docker

from ..base import BackendError
from . import validate as v
from .engine import explain
from .inventory import STACK_LABEL, service_mode
from .specs import (
    HealthCheck,
    Mount,
    PortSpec,
    Resources,
    RestartPolicy,
    ServiceSpec,
    SpecError,
    UpdatePolicy,
    check_service,
)


class ServiceError(BackendError):
    """The engine refused a service change, or the service is not there; the message is the engine's."""


class ServiceNotFound(ServiceError):
    """The service (or what the call names) does not exist on the engine."""


@dataclass
class ServiceChange:
    """What a change left to follow: the service, its new spec version, and the update before it."""

    service_id: str
    name: str
    action: str  # create, scale, update, rollback
    version: int
    previous_update_started: str  # UpdateStatus.StartedAt before the change ("" if none)
    warnings: list


# The engine's JSON ---------------------------------------------------------------------------

def _nanos(value):
    errors = v.Errors()
    result = v.duration(value, errors, "duration")
    return result


def _policy_to_engine(policy):
    data = {"Parallelism": policy.parallelism, "Delay": _nanos(policy.delay) or 0,
            "FailureAction": policy.failure_action, "Order": policy.order,
            "MaxFailureRatio": policy.max_failure_ratio}
    if policy.monitor is not None:
        data["Monitor"] = _nanos(policy.monitor)
    return data


def health_to_engine(health):
    data = {"Test": list(health.test)}
    for key, name in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period")):
        if getattr(health, name) is not None:
            data[key] = _nanos(getattr(health, name))
    if health.retries is not None:
        data["Retries"] = health.retries
    return data


def _mount_to_engine(mount):
    data = {"Type": mount.type, "Target": mount.target, "ReadOnly": bool(mount.read_only)}
    if mount.source:
        data["Source"] = mount.source
    if mount.type == "volume" and (mount.volume_driver or mount.volume_options or mount.volume_labels):
        driver = {"Name": mount.volume_driver or "local"}
        if mount.volume_options:
            driver["Options"] = dict(mount.volume_options)
        data["VolumeOptions"] = {"DriverConfig": driver, "Labels": dict(mount.volume_labels)}
    return data


def _size(value):
    return v.size(value, v.Errors(), "size")


def to_engine(spec: ServiceSpec, network_ids=None) -> dict:
    """The Swarm service Spec JSON for a checked ServiceSpec."""
    container = {"Image": spec.image}
    if spec.command is not None:
        container["Command"] = list(spec.command)
    if spec.args is not None:
        container["Args"] = list(spec.args)
    if spec.env:
        container["Env"] = [f"{key}={value}" for key, value in sorted(spec.env.items())]
    if spec.container_labels:
        container["Labels"] = dict(spec.container_labels)
    if spec.mounts:
        container["Mounts"] = [_mount_to_engine(m) for m in spec.mounts]
    if spec.healthcheck is not None:
        container["Healthcheck"] = health_to_engine(spec.healthcheck)
    if spec.cap_add:
        container["CapabilityAdd"] = list(spec.cap_add)
    if spec.cap_drop:
        container["CapabilityDrop"] = list(spec.cap_drop)
    if spec.user is not None:
        container["User"] = spec.user
    if spec.workdir is not None:
        container["Dir"] = spec.workdir
    if spec.stop_grace_period is not None:
        container["StopGracePeriod"] = _nanos(spec.stop_grace_period)
    task = {"ContainerSpec": container, "ForceUpdate": 0}
    resources, r = {}, spec.resources
    limits = {k: val for k, val in (("NanoCPUs", _cpus(r.cpu_limit)), ("MemoryBytes", _size(r.memory_limit))) if val}
    reservations = {k: val for k, val in (("NanoCPUs", _cpus(r.cpu_reservation)),
                                          ("MemoryBytes", _size(r.memory_reservation))) if val}
    if limits:
        resources["Limits"] = limits
    if reservations:
        resources["Reservations"] = reservations
    if resources:
        task["Resources"] = resources
    if spec.restart_policy is not None:
        p = spec.restart_policy
        policy = {"Condition": p.condition}
        if p.delay is not None:
            policy["Delay"] = _nanos(p.delay)
        if p.max_attempts is not None:
            policy["MaxAttempts"] = p.max_attempts
        if p.window is not None:
            policy["Window"] = _nanos(p.window)
        task["RestartPolicy"] = policy
    if spec.constraints:
        task["Placement"] = {"Constraints": list(spec.constraints)}
    if spec.networks:
        ids = network_ids or {}
        task["Networks"] = [{"Target": ids.get(name, name)} for name in spec.networks]
    data = {"Name": spec.name, "Labels": dict(spec.labels), "TaskTemplate": task,
            "Mode": {"Replicated": {"Replicas": spec.replicas}} if spec.mode == "replicated" else {"Global": {}},
            "EndpointSpec": {"Mode": spec.endpoint_mode, "Ports": [
                {k: val for k, val in (("TargetPort", p.target), ("PublishedPort", p.published),
                                       ("Protocol", p.protocol), ("PublishMode", p.mode)) if val is not None}
                for p in spec.ports]}}
    if spec.update_config is not None:
        data["UpdateConfig"] = _policy_to_engine(spec.update_config)
    if spec.rollback_config is not None:
        data["RollbackConfig"] = _policy_to_engine(spec.rollback_config)
    return data


def _cpus(value):
    return int(round(value * 10**9)) if value else None


def _seconds(nanos):
    if nanos is None:
        return None
    return nanos // 10**9 if nanos % 10**9 == 0 else nanos / 10**9


def from_engine(data: dict, network_names=None) -> ServiceSpec:
    """Read a service's Spec JSON back into a ServiceSpec (durations in seconds, sizes in bytes)."""
    task = data.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    mode, replicas = service_mode(data)
    names = network_names or {}
    res = task.get("Resources") or {}
    limits, reservations = res.get("Limits") or {}, res.get("Reservations") or {}
    health = container.get("Healthcheck")
    restart = task.get("RestartPolicy")

    def policy(raw):
        if raw is None:
            return None
        return UpdatePolicy(parallelism=raw.get("Parallelism", 1), delay=_seconds(raw.get("Delay", 0)) or 0,
                            order=raw.get("Order", "stop-first"), failure_action=raw.get("FailureAction", "pause"),
                            monitor=_seconds(raw.get("Monitor")), max_failure_ratio=raw.get("MaxFailureRatio", 0.0))

    def mount(raw):
        options = raw.get("VolumeOptions") or {}
        driver = options.get("DriverConfig") or {}
        return Mount(target=raw.get("Target", ""), source=raw.get("Source", ""), type=raw.get("Type", "volume"),
                     read_only=bool(raw.get("ReadOnly")), volume_driver=driver.get("Name", "") if driver else "",
                     volume_options=dict(driver.get("Options") or {}), volume_labels=dict(options.get("Labels") or {}))

    return ServiceSpec(
        name=data.get("Name", ""), image=container.get("Image", ""),
        replicas=replicas if mode == "replicated" else 1, mode=mode,
        command=container.get("Command"), args=container.get("Args"),
        env=dict(item.split("=", 1) if "=" in item else (item, "") for item in container.get("Env") or []),
        ports=[PortSpec(target=p.get("TargetPort"), published=p.get("PublishedPort"),
                        protocol=p.get("Protocol", "tcp"), mode=p.get("PublishMode", "ingress"))
               for p in (data.get("EndpointSpec") or {}).get("Ports") or []],
        resources=Resources(cpu_limit=_cpu_count(limits.get("NanoCPUs")),
                            cpu_reservation=_cpu_count(reservations.get("NanoCPUs")),
                            memory_limit=limits.get("MemoryBytes") or None,
                            memory_reservation=reservations.get("MemoryBytes") or None),
        constraints=list((task.get("Placement") or {}).get("Constraints") or []),
        healthcheck=HealthCheck(test=list(health.get("Test") or []), interval=_seconds(health.get("Interval")),
                                timeout=_seconds(health.get("Timeout")), retries=health.get("Retries"),
                                start_period=_seconds(health.get("StartPeriod"))) if health else None,
        restart_policy=RestartPolicy(condition=restart.get("Condition", "any"), delay=_seconds(restart.get("Delay")),
                                     max_attempts=restart.get("MaxAttempts"),
                                     window=_seconds(restart.get("Window"))) if restart else None,
        update_config=policy(data.get("UpdateConfig")), rollback_config=policy(data.get("RollbackConfig")),
        labels=dict(data.get("Labels") or {}), container_labels=dict(container.get("Labels") or {}),
        networks=[names.get(n.get("Target"), n.get("Target")) for n in task.get("Networks") or []],
        endpoint_mode=(data.get("EndpointSpec") or {}).get("Mode", "vip"),
        mounts=[mount(m) for m in container.get("Mounts") or []],
        cap_add=list(container.get("CapabilityAdd") or []), cap_drop=list(container.get("CapabilityDrop") or []),
        user=container.get("User"), workdir=container.get("Dir"),
        stop_grace_period=_seconds(container.get("StopGracePeriod")),
    )


def _cpu_count(nanos):
    return nanos / 10**9 if nanos else None


# Talking to the engine -----------------------------------------------------------------------

def _engine_call(client, what, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except docker.errors.NotFound as exc:
        raise ServiceNotFound(f"{what}: not found ({exc.explanation or exc})")
    except docker.errors.APIError as exc:
        raise ServiceError(f"{what}: the engine refused: {exc.explanation or exc}")
    except Exception as exc:
        spec = getattr(client, "spec", None)
        if spec is None:
            raise
        raise explain(spec, exc) from None


def inspect(client, service) -> dict:
    """The service's engine JSON (by id or name); ServiceError when it is not there."""
    return _engine_call(client, f"service {service}", client.api.inspect_service, service)


def network_names(client) -> dict:
    return {n["Id"]: n["Name"] for n in _engine_call(client, "networks", client.api.networks)}


def current_spec(client, service) -> ServiceSpec:
    return from_engine(inspect(client, service)["Spec"], network_names(client))


def _preflight(client, spec, *, service_id=None):
    """Engine-aware checks: the name is free, published ports are not taken, host ports fit the nodes."""
    errors = v.Errors()
    others = [s for s in _engine_call(client, "services", client.api.services) if s["ID"] != service_id]
    if service_id is None and any(s["Spec"]["Name"] == spec.name for s in others):
        errors.add("name", f"a service named {spec.name} exists already")
    taken = {}
    for other in others:
        for p in ((other.get("Endpoint") or {}).get("Ports") or (other["Spec"].get("EndpointSpec") or {})
                  .get("Ports") or []):
            if p.get("PublishedPort"):
                taken[(p["PublishedPort"], p.get("Protocol", "tcp"))] = other["Spec"]["Name"]
    fixed_host = False
    for i, port in enumerate(spec.ports):
        owner = taken.get((port.published, port.protocol)) if port.published else None
        if owner:
            errors.add(f"ports[{i}].published", f"port {port.published}/{port.protocol} is published by service "
                                                f"{owner} already")
        fixed_host |= bool(port.published) and port.mode == "host"
    if fixed_host and spec.mode == "replicated" and spec.replicas > 1:
        ready = [n for n in _engine_call(client, "nodes", client.api.nodes)
                 if (n.get("Status") or {}).get("State") == "ready" and n["Spec"].get("Availability") == "active"]
        if spec.replicas > len(ready):
            errors.add("replicas", f"{spec.replicas} replicas with a fixed host-mode port need as many nodes; "
                                   f"{len(ready)} are ready: leave the published port empty (the engine picks "
                                   f"one per task) or lower the replicas")
    known = set(network_names(client).values())
    for i, name in enumerate(spec.networks):
        if name not in known:
            errors.add(f"networks[{i}]", f"no network named {name}")
    errors.raise_if_any()


def _ids(client):
    return {name: nid for nid, name in network_names(client).items()}


def _change(client, service, action, previous, warnings=None):
    data = inspect(client, service)
    return ServiceChange(service_id=data["ID"], name=data["Spec"]["Name"], action=action,
                         version=data["Version"]["Index"], previous_update_started=previous,
                         warnings=list(warnings or []))


def create(client, spec: ServiceSpec, *, max_replicas=1000) -> ServiceChange:
    """Check the spec against itself and the engine, then create the service."""
    spec = check_service(spec, max_replicas=max_replicas)
    _preflight(client, spec)
    data = to_engine(spec, _ids(client))
    result = _engine_call(client, f"create service {spec.name}", client.api.create_service,
                          data["TaskTemplate"], name=data["Name"], labels=data["Labels"], mode=data["Mode"],
                          update_config=data.get("UpdateConfig"), rollback_config=data.get("RollbackConfig"),
                          endpoint_spec=data["EndpointSpec"])
    return _change(client, result["ID"], "create", "", result.get("Warnings"))


def _submit(client, current, data, action, *, rollback=False):
    """POST the whole Spec at the version we read (a concurrent change makes the engine refuse)."""
    previous = (current.get("UpdateStatus") or {}).get("StartedAt", "")
    params = {"version": current["Version"]["Index"]}
    if rollback:
        params["rollback"] = "previous"
    api = client.api
    what = f"{action} service {current['Spec']['Name']}"
    response = _engine_call(client, what, api._post_json, api._url("/services/{0}/update", current["ID"]),
                            data=data, params=params)
    result = _engine_call(client, what, api._result, response, json=True)
    return _change(client, current["ID"], action, previous, (result or {}).get("Warnings"))


def scale(client, service, replicas: int, *, max_replicas=1000) -> ServiceChange:
    """Set a replicated service's replica count."""
    errors = v.Errors()
    v.integer(replicas, errors, "replicas", low=0, high=max_replicas)
    errors.raise_if_any()
    current = inspect(client, service)
    mode, _ = service_mode(current["Spec"])
    if mode != "replicated":
        raise SpecError({"replicas": [f"service {current['Spec']['Name']} is {mode}: only replicated services "
                                      f"scale"]})
    data = dict(current["Spec"], Mode={"Replicated": {"Replicas": replicas}})
    return _submit(client, current, data, "scale")


def update(client, service, spec: ServiceSpec | None = None, *, image: str | None = None, force=False,
           max_replicas=1000) -> ServiceChange:
    """Roll the service to a new spec, or only to a new image; force restarts tasks with the same spec."""
    current = inspect(client, service)
    if spec is None:
        spec = from_engine(current["Spec"], network_names(client))
    if image is not None:
        spec.image = image
    spec = check_service(spec, max_replicas=max_replicas)
    if spec.name != current["Spec"]["Name"]:
        raise SpecError({"name": ["a service cannot be renamed by an update"]})
    _preflight(client, spec, service_id=current["ID"])
    data = overlay(current["Spec"], to_engine(spec, _ids(client)))
    force_update = ((current["Spec"].get("TaskTemplate") or {}).get("ForceUpdate") or 0)
    data["TaskTemplate"]["ForceUpdate"] = force_update + 1 if force else force_update
    return _submit(client, current, data, "update")


# What a ServiceSpec says, as paths in the engine's Spec; everything else there (secrets, configs,
# DNS, hosts, placement preferences, log driver, pids limit …) is left as it is by an update.
MANAGED = [("Labels",), ("Mode",), ("UpdateConfig",), ("RollbackConfig",), ("EndpointSpec", "Mode"),
           ("EndpointSpec", "Ports"), ("TaskTemplate", "RestartPolicy"), ("TaskTemplate", "Networks"),
           ("TaskTemplate", "Placement", "Constraints")] + [
    ("TaskTemplate", "ContainerSpec", key) for key in (
        "Image", "Command", "Args", "Env", "Labels", "Mounts", "Healthcheck", "CapabilityAdd", "CapabilityDrop",
        "User", "Dir", "StopGracePeriod")] + [
    ("TaskTemplate", "Resources", part, key) for part in ("Limits", "Reservations") for key in ("NanoCPUs",
                                                                                                 "MemoryBytes")]


def overlay(current: dict, ours: dict) -> dict:
    """The current engine Spec with the managed paths set from ours (or removed where ours has none)."""
    result = copy.deepcopy(current)
    for path in MANAGED:
        source = ours
        for key in path:
            source = source.get(key) if isinstance(source, dict) else None
        target = result
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        if source is None:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = copy.deepcopy(source)
    return result


def rollback(client, service) -> ServiceChange:
    """Ask the engine to roll back to the previous spec (with the service's rollback_config)."""
    current = inspect(client, service)
    if not current.get("PreviousSpec"):
        raise ServiceError(f"service {current['Spec']['Name']} has no previous spec to roll back to")
    return _submit(client, current, current["Spec"], "rollback", rollback=True)


def remove(client, service) -> None:
    _engine_call(client, f"remove service {service}", client.api.remove_service, service)


def stack_of(data: dict) -> str:
    return (data.get("Spec", data).get("Labels") or {}).get(STACK_LABEL, "")
