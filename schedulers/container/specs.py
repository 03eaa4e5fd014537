"""What a container or a Swarm service should be: dataclasses, built from plain dicts and checked
field by field before anything is sent (SpecError with {field path: [messages]}).

Durations are seconds or Go durations ("1m30s"); sizes are bytes or "512m"; CPUs are counts
(0.5 = half a CPU). Conversions to the engine's JSON live in containers.py and services.py.
"""
import dataclasses
import ipaddress
import types
import typing
from dataclasses import dataclass, field

from . import validate as v
from .validate import Errors, SpecError

PROTOCOLS = ("tcp", "udp", "sctp")
PUBLISH_MODES = ("ingress", "host")
ENDPOINT_MODES = ("vip", "dnsrr")
SERVICE_MODES = ("replicated", "global")
RESTART_CONDITIONS = ("none", "on-failure", "any")
ORDERS = ("stop-first", "start-first")
UPDATE_FAILURE_ACTIONS = ("pause", "continue", "rollback")
ROLLBACK_FAILURE_ACTIONS = ("pause", "continue")
MOUNT_TYPES = ("volume", "bind", "tmpfs")
CONTAINER_RESTART = ("no", "always", "unless-stopped", "on-failure")
MAX_REPLICAS = 1000


@dataclass
class PortSpec:
    target: int
    published: int | None = None  # None: the engine picks one (per task in host mode)
    protocol: str = "tcp"
    mode: str = "ingress"  # ingress: the routing mesh (needs IPVS); host: on each task's node


@dataclass
class Resources:
    cpu_limit: float | None = None  # CPUs
    cpu_reservation: float | None = None
    memory_limit: int | str | None = None  # bytes or "256m"
    memory_reservation: int | str | None = None


@dataclass
class HealthCheck:
    test: list  # ["CMD", "prog", "arg"], ["CMD-SHELL", "line"] or ["NONE"]
    interval: float | str | None = None
    timeout: float | str | None = None
    retries: int | None = None
    start_period: float | str | None = None


@dataclass
class RestartPolicy:
    condition: str = "any"
    delay: float | str | None = None
    max_attempts: int | None = None
    window: float | str | None = None


@dataclass
class UpdatePolicy:
    parallelism: int = 1  # 0: all at once
    delay: float | str = 0
    order: str = "stop-first"
    failure_action: str = "pause"
    monitor: float | str | None = None  # engine default 5s
    max_failure_ratio: float = 0.0


@dataclass
class Mount:
    target: str
    source: str = ""  # volume name or host path (bind); empty for tmpfs and anonymous volumes
    type: str = "volume"
    read_only: bool = False
    volume_driver: str = ""
    volume_options: dict = field(default_factory=dict)  # driver options (local: type/o/device)
    volume_labels: dict = field(default_factory=dict)


@dataclass
class ServiceSpec:
    name: str
    image: str
    replicas: int = 1
    mode: str = "replicated"
    command: list | None = None  # the entrypoint (ContainerSpec.Command)
    args: list | None = None  # its arguments (Compose `command`)
    env: dict = field(default_factory=dict)
    ports: list = field(default_factory=list)  # [PortSpec]
    resources: Resources = field(default_factory=Resources)
    constraints: list = field(default_factory=list)
    healthcheck: HealthCheck | None = None
    restart_policy: RestartPolicy | None = None
    update_config: UpdatePolicy | None = None
    rollback_config: UpdatePolicy | None = None
    labels: dict = field(default_factory=dict)  # on the service
    container_labels: dict = field(default_factory=dict)  # on its containers
    networks: list = field(default_factory=list)  # names
    endpoint_mode: str = "vip"  # vip (needs IPVS) or dnsrr
    mounts: list = field(default_factory=list)  # [Mount]
    cap_add: list = field(default_factory=list)
    cap_drop: list = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    stop_grace_period: float | str | None = None

    @classmethod
    def from_dict(cls, data):
        return build(cls, data)


@dataclass
class ContainerPort:
    container_port: int
    protocol: str = "tcp"
    host_ip: str = "127.0.0.1"
    host_port: int | None = None  # None: the engine picks one


@dataclass
class ContainerSpec:
    image: str
    name: str | None = None
    command: list | None = None
    entrypoint: list | None = None
    env: dict = field(default_factory=dict)
    ports: list = field(default_factory=list)  # [ContainerPort]
    labels: dict = field(default_factory=dict)
    restart: str = "no"
    restart_max_retries: int | None = None
    memory_limit: int | str | None = None
    cpus: float | None = None
    mounts: list = field(default_factory=list)  # [Mount]
    network: str | None = None
    healthcheck: HealthCheck | None = None
    user: str | None = None
    workdir: str | None = None
    read_only: bool = False
    # Privileged features: see safety.py; only administrators may ask for them.
    privileged: bool = False
    network_mode: str | None = None  # "host", "none", "container:<id>"
    pid_mode: str | None = None
    ipc_mode: str | None = None
    uts_mode: str | None = None
    userns_mode: str | None = None
    cap_add: list = field(default_factory=list)
    cap_drop: list = field(default_factory=list)
    devices: list = field(default_factory=list)  # "/dev/x[:/dev/y[:rwm]]"
    security_opt: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, data):
        return build(cls, data)


# Building from plain data --------------------------------------------------------------------

def build(cls, data, errors=None, path=""):
    """Make a dataclass (nested ones too) from a dict; unknown keys and bad shapes are field errors."""
    own = errors is None
    if own:
        errors = Errors()
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        errors.add(path or cls.__name__, f"must be an object, not {type(data).__name__}")
        if own:
            errors.raise_if_any()
        return None
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            errors.add(where, "unknown field")
            continue
        values[key] = _convert(cls, key, hints[key], value, errors, where)
    for name, f in known.items():
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.add(f"{path}.{name}" if path else name, "this field is required")
    if errors and own:
        errors.raise_if_any()
    try:
        return cls(**values)
    except TypeError as exc:
        errors.add(path or cls.__name__, str(exc))
        errors.raise_if_any()


_LIST_ITEMS = {(ServiceSpec, "ports"): PortSpec, (ServiceSpec, "mounts"): Mount,
               (ContainerSpec, "ports"): ContainerPort, (ContainerSpec, "mounts"): Mount}


def _convert(owner, key, hint, value, errors, where):
    item_cls = _LIST_ITEMS.get((owner, key))
    if item_cls is not None and isinstance(value, list) and _accepts_list(hint):
        return [build(item_cls, item, errors, f"{where}[{i}]") if isinstance(item, dict) else item
                for i, item in enumerate(value)]
    for candidate in _candidates(hint):
        if dataclasses.is_dataclass(candidate):
            if isinstance(value, dict):
                return build(candidate, value, errors, where)
            if value is not None and not isinstance(value, candidate):
                errors.add(where, f"must be an object, not {type(value).__name__}")
            return value
    return value


def _candidates(hint):
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _accepts_list(hint):
    return any(c is list or typing.get_origin(c) is list for c in _candidates(hint))


# Checking -----------------------------------------------------------------------------------

def check_service(spec: ServiceSpec, *, max_replicas=MAX_REPLICAS) -> ServiceSpec:
    """Refuse a service spec with every field error at once (SpecError); return it when valid."""
    if isinstance(spec, dict):
        spec = ServiceSpec.from_dict(spec)
    e = Errors()
    v.name(spec.name, e, "name", what="service name")
    v.image_reference(spec.image, e, "image")
    v.choice(spec.mode, e, "mode", SERVICE_MODES)
    if spec.mode == "replicated":
        v.integer(spec.replicas, e, "replicas", low=0, high=max_replicas)
    v.string_list(spec.command, e, "command")
    v.string_list(spec.args, e, "args")
    v.env(spec.env, e, "env")
    _check_ports(spec, e)
    _check_resources(spec.resources, e, "resources")
    for i, item in enumerate(spec.constraints or []):
        v.constraint(item, e, f"constraints[{i}]")
    if spec.healthcheck is not None:
        check_health(spec.healthcheck, e, "healthcheck")
    if spec.restart_policy is not None:
        policy = _typed(spec.restart_policy, RestartPolicy, e, "restart_policy")
        if policy:
            v.choice(policy.condition, e, "restart_policy.condition", RESTART_CONDITIONS)
            v.duration(policy.delay, e, "restart_policy.delay")
            v.integer(policy.max_attempts, e, "restart_policy.max_attempts", low=0, optional=True)
            v.duration(policy.window, e, "restart_policy.window")
    for which, actions in (("update_config", UPDATE_FAILURE_ACTIONS), ("rollback_config", ROLLBACK_FAILURE_ACTIONS)):
        policy = getattr(spec, which)
        if policy is not None and _typed(policy, UpdatePolicy, e, which):
            v.integer(policy.parallelism, e, f"{which}.parallelism", low=0, high=max_replicas)
            v.duration(policy.delay, e, f"{which}.delay", optional=False)
            v.choice(policy.order, e, f"{which}.order", ORDERS)
            v.choice(policy.failure_action, e, f"{which}.failure_action", actions)
            v.duration(policy.monitor, e, f"{which}.monitor")
            v.number(policy.max_failure_ratio, e, f"{which}.max_failure_ratio", low=0, high=1)
    v.labels(spec.labels, e, "labels")
    v.labels(spec.container_labels, e, "container_labels")
    for i, network in enumerate(spec.networks or []):
        v.name(network, e, f"networks[{i}]", what="network name", max_length=255)
    v.choice(spec.endpoint_mode, e, "endpoint_mode", ENDPOINT_MODES)
    _check_mounts(spec.mounts, e)
    spec.cap_add = [v.capability(c, e, f"cap_add[{i}]") for i, c in enumerate(spec.cap_add or [])]
    spec.cap_drop = [v.capability(c, e, f"cap_drop[{i}]") for i, c in enumerate(spec.cap_drop or [])]
    v.text(spec.user, e, "user", max_length=255)
    if spec.workdir is not None:
        v.absolute_path(spec.workdir, e, "workdir")
    v.duration(spec.stop_grace_period, e, "stop_grace_period")
    e.raise_if_any()
    return spec


def _typed(value, cls, errors, where):
    if not isinstance(value, cls):
        errors.add(where, f"must be a {cls.__name__}")
        return None
    return value


def _check_ports(spec, e):
    seen = {}
    for i, item in enumerate(spec.ports or []):
        where = f"ports[{i}]"
        if not _typed(item, PortSpec, e, where):
            continue
        v.port(item.target, e, f"{where}.target")
        if item.published is not None:
            v.port(item.published, e, f"{where}.published")
        v.choice(item.protocol, e, f"{where}.protocol", PROTOCOLS)
        v.choice(item.mode, e, f"{where}.mode", PUBLISH_MODES)
        if spec.endpoint_mode == "dnsrr" and item.mode == "ingress":
            e.add(f"{where}.mode", "the routing mesh (ingress) needs endpoint mode vip; with dnsrr publish in "
                                   "host mode")
        if item.published is not None:
            key = (item.published, item.protocol)
            if key in seen:
                e.add(f"{where}.published", f"port {item.published}/{item.protocol} is already published by "
                                            f"ports[{seen[key]}]")
            seen.setdefault(key, i)


def _check_resources(resources, e, where):
    if not _typed(resources, Resources, e, where):
        return
    v.number(resources.cpu_limit, e, f"{where}.cpu_limit", low=0, high=1024, optional=True, low_open=True)
    v.number(resources.cpu_reservation, e, f"{where}.cpu_reservation", low=0, high=1024, optional=True,
             low_open=True)
    limit = v.size(resources.memory_limit, e, f"{where}.memory_limit")
    reservation = v.size(resources.memory_reservation, e, f"{where}.memory_reservation")
    if limit and reservation and reservation > limit:
        e.add(f"{where}.memory_reservation", "is above the memory limit")
    if resources.cpu_limit and resources.cpu_reservation and isinstance(resources.cpu_limit, int | float) \
            and isinstance(resources.cpu_reservation, int | float) and resources.cpu_reservation > resources.cpu_limit:
        e.add(f"{where}.cpu_reservation", "is above the CPU limit")


def check_health(health, e, where):
    if not _typed(health, HealthCheck, e, where):
        return
    test = v.string_list(health.test, e, f"{where}.test", optional=False)
    if isinstance(test, list):
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            e.add(f"{where}.test", "must start with CMD, CMD-SHELL or NONE")
        elif test[0] != "NONE" and len(test) < 2:
            e.add(f"{where}.test", f"{test[0]} needs a command")
    for name in ("interval", "timeout", "start_period"):
        nanos = v.duration(getattr(health, name), e, f"{where}.{name}")
        if nanos is not None and 0 < nanos < 10**6:
            e.add(f"{where}.{name}", "must be at least 1ms")
    v.integer(health.retries, e, f"{where}.retries", low=0, high=1000, optional=True)


def _check_mounts(mounts, e):
    targets = {}
    for i, mount in enumerate(mounts or []):
        where = f"mounts[{i}]"
        if not _typed(mount, Mount, e, where):
            continue
        v.choice(mount.type, e, f"{where}.type", MOUNT_TYPES)
        v.absolute_path(mount.target, e, f"{where}.target")
        if mount.target in targets:
            e.add(f"{where}.target", f"{mount.target} is already mounted by mounts[{targets[mount.target]}]")
        targets.setdefault(mount.target, i)
        if mount.type == "bind":
            v.absolute_path(mount.source, e, f"{where}.source")
        elif mount.type == "volume" and mount.source:
            v.name(mount.source, e, f"{where}.source", what="volume name", max_length=255)
        elif mount.type == "tmpfs" and mount.source:
            e.add(f"{where}.source", "a tmpfs mount has no source")
        if mount.type != "volume" and (mount.volume_driver or mount.volume_options or mount.volume_labels):
            e.add(where, "volume driver, options and labels apply to volume mounts only")
        if not isinstance(mount.volume_options, dict):
            e.add(f"{where}.volume_options", "must map option names to values")
        v.labels(mount.volume_labels, e, f"{where}.volume_labels")


def check_container(spec: ContainerSpec) -> ContainerSpec:
    """Refuse a container spec with every field error at once (SpecError); return it when valid."""
    if isinstance(spec, dict):
        spec = ContainerSpec.from_dict(spec)
    e = Errors()
    v.image_reference(spec.image, e, "image")
    if spec.name is not None:
        v.name(spec.name, e, "name", what="container name", max_length=255)
    v.string_list(spec.command, e, "command")
    v.string_list(spec.entrypoint, e, "entrypoint")
    v.env(spec.env, e, "env")
    seen = {}
    for i, item in enumerate(spec.ports or []):
        where = f"ports[{i}]"
        if not _typed(item, ContainerPort, e, where):
            continue
        v.port(item.container_port, e, f"{where}.container_port")
        v.choice(item.protocol, e, f"{where}.protocol", PROTOCOLS)
        if item.host_port is not None:
            v.port(item.host_port, e, f"{where}.host_port")
            key = (item.host_ip, item.host_port, item.protocol)
            if key in seen:
                e.add(f"{where}.host_port", f"{item.host_ip}:{item.host_port}/{item.protocol} is already used by "
                                            f"ports[{seen[key]}]")
            seen.setdefault(key, i)
        try:
            ipaddress.ip_address(item.host_ip)
        except (ValueError, TypeError):
            e.add(f"{where}.host_ip", f"{item.host_ip!r} is not an IP address")
    v.labels(spec.labels, e, "labels")
    v.choice(spec.restart, e, "restart", CONTAINER_RESTART)
    v.integer(spec.restart_max_retries, e, "restart_max_retries", low=0, high=10000, optional=True)
    if spec.restart_max_retries is not None and spec.restart != "on-failure":
        e.add("restart_max_retries", "applies to restart on-failure only")
    v.size(spec.memory_limit, e, "memory_limit")
    v.number(spec.cpus, e, "cpus", low=0, high=1024, optional=True, low_open=True)
    _check_mounts(spec.mounts, e)
    if spec.network is not None:
        v.name(spec.network, e, "network", what="network name", max_length=255)
    if spec.network and spec.network_mode:
        e.add("network", "give a network or a network mode, not both")
    if spec.healthcheck is not None:
        check_health(spec.healthcheck, e, "healthcheck")
    v.text(spec.user, e, "user", max_length=255)
    if spec.workdir is not None:
        v.absolute_path(spec.workdir, e, "workdir")
    for name in ("network_mode", "pid_mode", "ipc_mode", "uts_mode", "userns_mode"):
        value = getattr(spec, name)
        if value is not None and (not isinstance(value, str) or not value or v._CONTROL.search(value)):
            e.add(name, f"{value!r} is not a mode")
    spec.cap_add = [v.capability(c, e, f"cap_add[{i}]") for i, c in enumerate(spec.cap_add or [])]
    spec.cap_drop = [v.capability(c, e, f"cap_drop[{i}]") for i, c in enumerate(spec.cap_drop or [])]
    for i, device in enumerate(spec.devices or []):
        v.absolute_path(str(device).split(":", 1)[0], e, f"devices[{i}]")
    for i, option in enumerate(spec.security_opt or []):
        v.text(option, e, f"security_opt[{i}]", optional=False, max_length=1024)
    e.raise_if_any()
    return spec


__all__ = ["ContainerPort", "ContainerSpec", "HealthCheck", "Mount", "PortSpec", "Resources", "RestartPolicy",
           "ServiceSpec", "SpecError", "UpdatePolicy", "build", "check_container", "check_service"]
