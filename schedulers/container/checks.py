"""Where a service answers and whether requests spread over its replicas; whether an image tag
now points to another image than the one running.

Publishing: `ingress` ports go through the routing mesh (one port on every node, spread by
IPVS); `host` ports are bound on each task's own node, at a port the engine picks per task
when none is fixed. Kernels without IPVS (this machine) only have host mode. Docker 20.10
binds a task's IPv4 and IPv6 sockets at different random ports and reports both in the
task's PortStatus without saying which is which, so for tasks on the engine's own node the
IPv4 binding is read from the container itself.
"""
import http.client
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import docker

from .services import ServiceError, _engine_call


@dataclass
class Endpoint:
    address: str
    port: int
    protocol: str
    target: int
    task_id: str = ""
    slot: int | None = None
    node_id: str = ""


@dataclass
class ServiceEndpoints:
    service: str
    publish_mode: str  # host, ingress, mixed, none
    endpoint_mode: str  # vip, dnsrr
    endpoints: list  # [Endpoint]


def publish_mode(service_data: dict) -> str:
    """host, ingress, mixed or none, from the service's published ports."""
    ports = ((service_data.get("Spec", service_data).get("EndpointSpec") or {}).get("Ports") or [])
    modes = {p.get("PublishMode", "ingress") for p in ports}
    if not modes:
        return "none"
    return modes.pop() if len(modes) == 1 else "mixed"


def endpoints(client, service, *, node_addresses: dict | None = None) -> ServiceEndpoints:
    """The address:port of each running task (host mode) or of each node (ingress mode)."""
    data = _engine_call(client, f"service {service}", client.api.inspect_service, service)
    mode = publish_mode(data)
    endpoint_mode = (data["Spec"].get("EndpointSpec") or {}).get("Mode", "vip")
    nodes = {n["ID"]: (n.get("Status") or {}).get("Addr", "") for n in client.api.nodes()}
    nodes.update(node_addresses or {})
    local_node = (client.api.info().get("Swarm") or {}).get("NodeID", "")
    found = []
    if mode in ("ingress", "mixed"):
        for p in (data.get("Endpoint") or {}).get("Ports") or []:
            if p.get("PublishMode", "ingress") == "ingress" and p.get("PublishedPort"):
                found += [Endpoint(address, p["PublishedPort"], p.get("Protocol", "tcp"), p["TargetPort"],
                                   node_id=node) for node, address in sorted(nodes.items())]
    if mode in ("host", "mixed"):
        tasks = client.api.tasks(filters={"service": data["ID"], "desired-state": "running"})
        for task in sorted(tasks, key=lambda t: t.get("Slot") or 0):
            status = task.get("Status") or {}
            if status.get("State") != "running":
                continue
            node = task.get("NodeID", "")
            address = nodes.get(node, "")
            bound = _local_bindings(client, status) if node == local_node else None
            for target, protocol, port in bound if bound is not None else _port_status(status):
                found.append(Endpoint(address, port, protocol, target, task["ID"], task.get("Slot"), node))
    return ServiceEndpoints(data["Spec"]["Name"], mode, endpoint_mode, found)


def _port_status(status):
    """One published port per target and protocol (the first: IPv4 on Docker 20.10)."""
    seen = {}
    for p in (status.get("PortStatus") or {}).get("Ports") or []:
        if p.get("PublishMode") == "host":
            seen.setdefault((p["TargetPort"], p.get("Protocol", "tcp")), p["PublishedPort"])
    return [(target, protocol, port) for (target, protocol), port in seen.items()]


def _local_bindings(client, status):
    container_id = (status.get("ContainerStatus") or {}).get("ContainerID")
    if not container_id:
        return None
    try:
        ports = client.api.inspect_container(container_id)["NetworkSettings"]["Ports"] or {}
    except docker.errors.NotFound:
        return []
    result = []
    for key, bindings in ports.items():
        target, _, protocol = key.partition("/")
        ipv4 = [b for b in bindings or [] if ":" not in (b.get("HostIp") or "")]
        if ipv4:
            result.append((int(target), protocol or "tcp", int(ipv4[0]["HostPort"])))
    return result


@dataclass
class BalanceReport:
    requests: int
    answered: int
    replicas: dict  # hostname (the replica's answer) -> requests it answered
    endpoints: dict  # "address:port" -> requests answered there
    errors: list = field(default_factory=list)  # "address:port: what went wrong"
    seconds: float = 0.0

    @property
    def distinct(self):
        return len(self.replicas)


def check_balance(service_endpoints, requests=20, *, path="/", timeout=2.0, address=None) -> BalanceReport:
    """Send `requests` HTTP GETs over the endpoints in turn, each on a fresh connection.

    The answer's JSON `hostname` (or the body's first line) names the replica. address
    overrides every endpoint's address (e.g. 127.0.0.1 for a node reachable there).
    """
    targets = [e for e in getattr(service_endpoints, "endpoints", service_endpoints) if e.protocol == "tcp"]
    report = BalanceReport(requests, 0, {}, {})
    if not targets:
        report.errors.append("the service publishes no TCP endpoint")
        return report
    replicas, per_endpoint = Counter(), Counter()
    started = time.monotonic()
    for i in range(requests):
        endpoint = targets[i % len(targets)]
        host = address or endpoint.address or "127.0.0.1"
        where = f"{host}:{endpoint.port}"
        conn = http.client.HTTPConnection(host, endpoint.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            body = response.read(65536).decode("utf-8", "replace")
            if response.status >= 400:
                report.errors.append(f"{where}: HTTP {response.status}")
                continue
            try:
                name = str(json.loads(body).get("hostname") or "")
            except (ValueError, AttributeError):
                name = body.strip().splitlines()[0] if body.strip() else ""
            replicas[name or where] += 1
            per_endpoint[where] += 1
            report.answered += 1
        except (OSError, http.client.HTTPException) as exc:
            report.errors.append(f"{where}: {exc or type(exc).__name__}")
        finally:
            conn.close()
    report.replicas, report.endpoints = dict(replicas), dict(per_endpoint)
    report.seconds = time.monotonic() - started
    return report


# Image updates --------------------------------------------------------------------------------

@dataclass
class ImageUpdate:
    reference: str  # the tag as configured (digest stripped)
    pinned: bool  # the reference names a digest: a tag cannot move under it
    running: list  # image ids running (per container checked)
    current: str  # what the tag resolves to on this engine now ("" when it does not)
    update_available: bool
    unknown: int = 0  # tasks whose image could not be read (on other nodes)
    registry_digest: str = ""  # when check_registry: the registry's digest for the tag
    registry_error: str = ""
    message: str = ""


def _strip_digest(reference):
    name, _, digest = reference.partition("@")
    return name, digest


def _resolve(client, reference):
    try:
        return client.api.inspect_image(reference)["Id"]
    except docker.errors.ImageNotFound:
        return ""


def _registry(client, reference):
    """(registry digest, error) for reference, asked of the registry through the engine."""
    try:
        digest = client.api.inspect_distribution(reference)["Descriptor"]["digest"]
    except docker.errors.APIError as exc:
        return "", f"registry not reachable for {reference}: {exc.explanation or exc}"
    return digest, ""


def _verdict(client, reference, running, unknown=0, check_registry=False):
    tag, digest = _strip_digest(reference)
    current = _resolve(client, tag)
    result = ImageUpdate(tag, bool(digest), sorted(set(running)), current, False, unknown)
    if current and running:
        result.update_available = any(image != current for image in running)
    if check_registry and not digest:
        result.registry_digest, result.registry_error = _registry(client, tag)
        if result.registry_digest:
            known = set()
            for image in set(running):
                try:
                    known |= {d.partition("@")[2] for d in client.api.inspect_image(image).get("RepoDigests") or []}
                except docker.errors.ImageNotFound:
                    pass
            result.update_available |= result.registry_digest not in known
    if not current:
        result.message = f"{tag} is not on this engine"
    elif result.update_available:
        result.message = f"{tag} now points to {current[:19]}, running {', '.join(i[:19] for i in result.running)}"
    else:
        result.message = f"{tag} is up to date"
    return result


def container_image_update(client, container, *, check_registry=False) -> ImageUpdate:
    """Whether the container's image tag now resolves to another image than the one it runs."""
    try:
        attrs = client.api.inspect_container(container)
    except docker.errors.NotFound as exc:
        raise ServiceError(f"container {container}: not found ({exc.explanation or exc})")
    return _verdict(client, attrs["Config"]["Image"], [attrs["Image"]], check_registry=check_registry)


def service_image_update(client, service, *, check_registry=False) -> ImageUpdate:
    """The same for a service: its tag against the images of its running tasks on this engine."""
    data = _engine_call(client, f"service {service}", client.api.inspect_service, service)
    reference = data["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    running, unknown = [], 0
    for task in client.api.tasks(filters={"service": data["ID"], "desired-state": "running"}):
        container_id = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        try:
            running.append(client.api.inspect_container(container_id)["Image"] if container_id else None)
        except docker.errors.NotFound:
            running.append(None)  # on another node, or gone
    unknown = sum(1 for image in running if image is None)
    return _verdict(client, reference, [i for i in running if i], unknown, check_registry)
