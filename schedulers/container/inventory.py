"""Inventory snapshots of one engine: containers, images, networks, volumes, and in Swarm mode
nodes, services and tasks, as plain dataclasses.

Cost: one list call per kind. docker-py's `containers.list(sparse=False)` inspects every
container (N+1 calls); here the list answer is used as it is, and only what it lacks (restart
count, start/finish times) comes from inspecting, in parallel, when `detail=True`. Measured
on this machine: see bench/containers.py.
"""
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import docker

from .engine import explain

STACK_LABEL = "com.docker.stack.namespace"
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXITED = re.compile(r"^Exited \((-?\d+)\)")


@dataclass
class ContainerInfo:
    id: str
    name: str
    state: str  # created, running, paused, restarting, removing, exited, dead
    status: str  # the engine's words: "Up 3 minutes (healthy)"
    health: str  # "", starting, healthy, unhealthy
    image: str  # the reference it was created from
    image_id: str
    image_digest: str  # repo digest of image_id when the engine knows one ("" for local builds)
    ports: list  # [{"ip", "private", "public", "protocol"}]
    labels: dict
    created: int  # seconds since the epoch
    exit_code: int | None  # for exited containers
    restart_count: int | None = None  # None: not read (detail=False)
    started_at: str = ""
    finished_at: str = ""
    networks: list = field(default_factory=list)
    mounts: list = field(default_factory=list)  # [{"type", "source", "destination", "rw"}]
    service_id: str = ""
    service_name: str = ""
    task_id: str = ""
    node_id: str = ""
    stack: str = ""


@dataclass
class ImageInfo:
    id: str
    tags: list
    digests: list
    created: int
    size: int
    labels: dict


@dataclass
class NetworkInfo:
    id: str
    name: str
    driver: str
    scope: str
    attachable: bool
    ingress: bool
    internal: bool
    labels: dict
    subnets: list


@dataclass
class VolumeInfo:
    name: str
    driver: str
    mountpoint: str
    scope: str
    labels: dict
    options: dict


@dataclass
class NodeInfo:
    id: str
    hostname: str
    role: str  # manager, worker
    availability: str  # active, pause, drain
    state: str  # ready, down, unknown, disconnected
    address: str
    engine_version: str
    leader: bool
    labels: dict


@dataclass
class ServiceInfo:
    id: str
    name: str
    image: str
    mode: str  # replicated, global, replicated-job, global-job
    replicas_desired: int | None
    replicas_running: int | None
    update_state: str  # "", updating, paused, completed, rollback_started, rollback_paused, rollback_completed
    update_message: str
    endpoint_mode: str  # vip, dnsrr
    ports: list  # [{"target", "published", "protocol", "mode"}]
    labels: dict
    stack: str
    version: int
    created: str
    updated: str
    spec: dict = field(default_factory=dict, repr=False)  # the engine's Spec JSON, for services.from_engine


@dataclass
class TaskInfo:
    id: str
    service_id: str
    slot: int | None
    node_id: str
    state: str
    desired_state: str
    message: str
    error: str
    container_id: str
    exit_code: int | None
    image: str
    timestamp: str
    ports: list  # host-mode ports: [{"target", "published", "protocol"}]


@dataclass
class Snapshot:
    containers: list
    images: list
    networks: list
    volumes: list
    nodes: list = field(default_factory=list)
    services: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    swarm: bool = False


def _call(client, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except docker.errors.NotFound:
        raise
    except Exception as exc:
        spec = getattr(client, "spec", None)
        if spec is None:
            raise
        raise explain(spec, exc) from None


def _swarm_labels(info, labels):
    info.service_id = labels.get("com.docker.swarm.service.id", "")
    info.service_name = labels.get("com.docker.swarm.service.name", "")
    info.task_id = labels.get("com.docker.swarm.task.id", "")
    info.node_id = labels.get("com.docker.swarm.node.id", "")
    info.stack = labels.get(STACK_LABEL, "")


def _mount(raw):
    """A volume by its name (its Source is the engine's directory for it), anything else by its source."""
    kind = raw.get("Type", "")
    source = raw.get("Name") if kind == "volume" and raw.get("Name") else raw.get("Source", "")
    return {"type": kind, "source": source, "destination": raw.get("Destination", ""), "rw": raw.get("RW", True)}


def _from_summary(row, digests):
    status = row.get("Status") or ""
    health = _HEALTH.search(status)
    exited = _EXITED.match(status)
    labels = row.get("Labels") or {}
    info = ContainerInfo(
        id=row["Id"], name=(row.get("Names") or ["/"])[0].lstrip("/"), state=row.get("State", ""), status=status,
        health=(health.group(1).replace("health: ", "") if health else ""), image=row.get("Image", ""),
        image_id=row.get("ImageID", ""), image_digest=digests.get(row.get("ImageID", ""), ""),
        ports=[{"ip": p.get("IP", ""), "private": p.get("PrivatePort"), "public": p.get("PublicPort"),
                "protocol": p.get("Type", "tcp")} for p in row.get("Ports") or []],
        labels=labels, created=row.get("Created", 0), exit_code=int(exited.group(1)) if exited else None,
        networks=sorted((row.get("NetworkSettings") or {}).get("Networks") or {}),
        mounts=[_mount(m) for m in row.get("Mounts") or []],
    )
    _swarm_labels(info, labels)
    return info


def _add_detail(info, attrs):
    state = attrs.get("State") or {}
    info.restart_count = attrs.get("RestartCount", 0)
    info.started_at = _time(state.get("StartedAt"))
    info.finished_at = _time(state.get("FinishedAt"))
    info.health = ((state.get("Health") or {}).get("Status") or info.health)
    if info.state in ("exited", "dead"):
        info.exit_code = state.get("ExitCode")
    return info


def _time(value):
    return "" if not value or value.startswith("0001-") else value


def container(client, container_id, digests=None) -> ContainerInfo:
    """One container, inspected (for an event); docker.errors.NotFound when it is gone."""
    attrs = _call(client, client.api.inspect_container, container_id)
    config, settings = attrs.get("Config") or {}, attrs.get("NetworkSettings") or {}
    ports = []
    for key, bindings in (settings.get("Ports") or {}).items():
        private, _, protocol = key.partition("/")
        for binding in bindings or [None]:
            ports.append({"ip": (binding or {}).get("HostIp", ""), "private": int(private),
                          "public": int(binding["HostPort"]) if binding and binding.get("HostPort") else None,
                          "protocol": protocol or "tcp"})
    state = attrs.get("State") or {}
    labels = config.get("Labels") or {}
    status = state.get("Status", "")
    info = ContainerInfo(
        id=attrs["Id"], name=attrs.get("Name", "").lstrip("/"), state=status, status=status,
        health="", image=config.get("Image", ""), image_id=attrs.get("Image", ""),
        image_digest=(digests or {}).get(attrs.get("Image", ""), ""), ports=ports, labels=labels,
        created=_epoch(attrs.get("Created", "")), exit_code=None,
        networks=sorted(settings.get("Networks") or {}),
        mounts=[_mount(m) for m in attrs.get("Mounts") or []],
    )
    _swarm_labels(info, labels)
    if digests is None and info.image_id:
        try:
            info.image_digest = next(iter(client.api.inspect_image(info.image_id).get("RepoDigests") or []), "")
        except docker.errors.APIError:
            pass
    return _add_detail(info, attrs)


def container_or_none(client, container_id, digests=None) -> ContainerInfo | None:
    """container(), or None when the engine no longer has it (removed since the event)."""
    try:
        return container(client, container_id, digests)
    except docker.errors.NotFound:
        return None


def _epoch(text):
    if not text:
        return 0
    try:  # the engine gives nanoseconds; fromisoformat takes at most microseconds
        head = text.rstrip("Z").partition(".")[0]
        return int(datetime.fromisoformat(head + "+00:00").timestamp())
    except ValueError:
        return 0


def containers(client, *, detail=True, workers=8, digests=None) -> list[ContainerInfo]:
    """Every container (running or not): one list call, plus parallel inspects when detail."""
    if digests is None:
        digests = {image.id: (image.digests or [""])[0] for image in images(client)}
    rows = _call(client, client.api.containers, all=True)
    result = [_from_summary(row, digests) for row in rows]
    if detail and result:
        def inspect(info):
            try:
                return _add_detail(info, client.api.inspect_container(info.id))
            except docker.errors.NotFound:
                return None  # removed between the list and the inspect

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(result)))) as pool:
            result = [info for info in pool.map(inspect, result) if info is not None]
    return result


def images(client) -> list[ImageInfo]:
    rows = _call(client, client.api.images)
    return [ImageInfo(id=r["Id"], tags=[t for t in r.get("RepoTags") or [] if t != "<none>:<none>"],
                      digests=[d for d in r.get("RepoDigests") or [] if not d.startswith("<none>")],
                      created=r.get("Created", 0), size=r.get("Size", 0), labels=r.get("Labels") or {})
            for r in rows]


def networks(client) -> list[NetworkInfo]:
    rows = _call(client, client.api.networks)
    return [NetworkInfo(id=r["Id"], name=r["Name"], driver=r.get("Driver", ""), scope=r.get("Scope", ""),
                        attachable=r.get("Attachable", False), ingress=r.get("Ingress", False),
                        internal=r.get("Internal", False), labels=r.get("Labels") or {},
                        subnets=[c.get("Subnet", "") for c in ((r.get("IPAM") or {}).get("Config") or [])])
            for r in rows]


def volumes(client) -> list[VolumeInfo]:
    rows = _call(client, client.api.volumes).get("Volumes") or []
    return [VolumeInfo(name=r["Name"], driver=r.get("Driver", ""), mountpoint=r.get("Mountpoint", ""),
                       scope=r.get("Scope", ""), labels=r.get("Labels") or {}, options=r.get("Options") or {})
            for r in rows]


def nodes(client) -> list[NodeInfo]:
    rows = _call(client, client.api.nodes)
    return [NodeInfo(id=r["ID"], hostname=(r.get("Description") or {}).get("Hostname", ""),
                     role=r["Spec"].get("Role", ""), availability=r["Spec"].get("Availability", ""),
                     state=(r.get("Status") or {}).get("State", ""), address=(r.get("Status") or {}).get("Addr", ""),
                     engine_version=((r.get("Description") or {}).get("Engine") or {}).get("EngineVersion", ""),
                     leader=bool((r.get("ManagerStatus") or {}).get("Leader")), labels=r["Spec"].get("Labels") or {})
            for r in rows]


def service_mode(spec):
    """(mode name, desired replicas or None) of a service Spec."""
    mode = spec.get("Mode") or {}
    if "Replicated" in mode:
        return "replicated", int((mode["Replicated"] or {}).get("Replicas", 1))
    if "Global" in mode:
        return "global", None
    if "ReplicatedJob" in mode:
        return "replicated-job", int((mode["ReplicatedJob"] or {}).get("TotalCompletions") or 1)
    if "GlobalJob" in mode:
        return "global-job", None
    return "replicated", 1


def service_info(row) -> ServiceInfo:
    spec = row["Spec"]
    mode, desired = service_mode(spec)
    status = row.get("ServiceStatus") or {}
    update = row.get("UpdateStatus") or {}
    endpoint = spec.get("EndpointSpec") or {}
    ports = (row.get("Endpoint") or {}).get("Ports") or endpoint.get("Ports") or []
    labels = spec.get("Labels") or {}
    image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
    return ServiceInfo(
        id=row["ID"], name=spec["Name"], image=image, mode=mode,
        replicas_desired=status.get("DesiredTasks", desired) if status else desired,
        replicas_running=status.get("RunningTasks") if status else None,
        update_state=update.get("State", ""), update_message=update.get("Message", ""),
        endpoint_mode=endpoint.get("Mode", "vip"),
        ports=[{"target": p.get("TargetPort"), "published": p.get("PublishedPort"),
                "protocol": p.get("Protocol", "tcp"), "mode": p.get("PublishMode", "ingress")} for p in ports],
        labels=labels, stack=labels.get(STACK_LABEL, ""), version=(row.get("Version") or {}).get("Index", 0),
        created=row.get("CreatedAt", ""), updated=row.get("UpdatedAt", ""), spec=spec,
    )


def services(client) -> list[ServiceInfo]:
    """Services with their running/desired task counts (one call: `status=true`, API 1.41+)."""
    status = not docker.utils.version_lt(client.api.api_version, "1.41")
    return [service_info(r) for r in _call(client, client.api.services, status=status)]


def service(client, service_id) -> ServiceInfo | None:
    """One service with its task counts (for an event), or None when it is gone."""
    status = not docker.utils.version_lt(client.api.api_version, "1.41")
    rows = [r for r in _call(client, client.api.services, filters={"id": service_id}, status=status)
            if r["ID"] == service_id]  # the engine's id filter matches prefixes
    return service_info(rows[0]) if rows else None


def task_info(row) -> TaskInfo:
    status = row.get("Status") or {}
    container_status = status.get("ContainerStatus") or {}
    return TaskInfo(
        id=row["ID"], service_id=row.get("ServiceID", ""), slot=row.get("Slot"), node_id=row.get("NodeID", ""),
        state=status.get("State", ""), desired_state=row.get("DesiredState", ""), message=status.get("Message", ""),
        error=status.get("Err", ""), container_id=container_status.get("ContainerID", ""),
        exit_code=container_status.get("ExitCode") if status.get("State") in ("failed", "complete", "shutdown")
        else None,
        image=((row.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", ""),
        timestamp=status.get("Timestamp", ""),
        ports=[{"target": p.get("TargetPort"), "published": p.get("PublishedPort"), "protocol": p.get("Protocol")}
               for p in (status.get("PortStatus") or {}).get("Ports") or []],
    )


def tasks(client, *, service_id=None, up_to_date=False) -> list[TaskInfo]:
    filters = {}
    if service_id:
        filters["service"] = service_id
    if up_to_date:
        filters["_up-to-date"] = "true"  # what `docker service ps`/--detach=false use: the current spec's tasks
    return [task_info(r) for r in _call(client, client.api.tasks, filters=filters)]


def is_manager(client):
    swarm = (_call(client, client.api.info).get("Swarm") or {})
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def snapshot(client, *, detail=True) -> Snapshot:
    """Everything at once; the Swarm kinds only on a manager (a worker cannot list them)."""
    image_list = images(client)
    digests = {image.id: (image.digests or [""])[0] for image in image_list}
    snap = Snapshot(containers=containers(client, detail=detail, digests=digests), images=image_list,
                    networks=networks(client), volumes=volumes(client))
    if is_manager(client):
        snap.swarm = True
        snap.nodes, snap.services, snap.tasks = nodes(client), services(client), tasks(client)
    return snap
