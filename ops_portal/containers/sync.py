"""Keeping the database in step with the engines.

- resync(engine_id, snapshot): everything an engine reported (a backend Snapshot) upserted in bulk,
  what it no longer has deleted: a few queries whatever the number of containers.
- EngineSync.event(event, client): one object refreshed from an engine event (a container
  inspected, a service marked for refresh); EngineSync.flush(client) refreshes marked services.
- on_container_change(engine, changes): the hook self-healing and autoscaling listen to
  (signals.container_changed), called on commit with every container whose state, health, exit
  code or restart count changed, appeared or went away.

Observed rows are not audited (like host facts): what changes them is the engine, or a job that is.
Browsers hear of every change through publish.py (after commit).
"""
import dataclasses
import datetime
import logging
import threading

from django.db import transaction
from django.utils import timezone

from schedulers import container as backend
from schedulers.container import inventory as inv
from schedulers.container import services as service_specs

from . import publish
from .choices import PublishMode
from .models import Container, Engine, Image, Network, Node, Service, Task, Volume
from .signals import ContainerChange, container_changed

log = logging.getLogger(__name__)
WATCHED = ("state", "health", "exit_code", "restart_count")
# Container events that change nothing the inventory keeps.
IGNORED_CONTAINER_ACTIONS = {"exec_create", "exec_start", "exec_die", "exec_detach", "attach", "detach", "resize",
                             "top", "export", "commit", "copy", "archive-path", "extract-to-dir", "update"}
CONTAINER_FIELDS = ["name", "image", "image_id", "digest", "state", "health", "status", "ports", "labels",
                    "networks", "mounts", "restart_count", "exit_code", "created_at", "started_at", "finished_at",
                    "service_id", "service_name", "task_id", "node_id", "stack", "host", "image_update", "seen"]
SERVICE_FIELDS = ["name", "image", "mode", "replicas_desired", "replicas_running", "spec", "version", "update_state",
                  "update_message", "endpoint_mode", "publish_mode", "ports", "endpoints", "stack", "labels",
                  "created_at", "updated_at", "image_update", "seen"]
TASK_FIELDS = ["service", "service_docker_id", "slot", "node_id", "container_id", "image", "state", "desired_state",
               "message", "error", "exit_code", "timestamp", "ports", "seen"]


# Conversions ---------------------------------------------------------------------------------

def when(value):
    """An aware datetime from epoch seconds or the engine's RFC 3339 text (nanoseconds cut); None if none."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int | float):
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    text = str(value)
    if text.startswith("0001-"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    zone = ""
    for sign in ("+", "-"):
        if sign in rest:
            rest, _, tail = rest.partition(sign)
            zone = sign + tail
    if not zone and len(head) > 19:
        head, zone = head[:19], head[19:]
    fraction = "".join(c for c in rest if c.isdigit())[:6]
    try:
        return datetime.datetime.fromisoformat(f"{head}{'.' + fraction if fraction else ''}{zone or '+00:00'}")
    except ValueError:
        return None


def normal_reference(reference):
    """An image reference as the engine tags it: digest dropped, ":latest" when no tag is named."""
    name = (reference or "").partition("@")[0]
    if name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def tag_index(images):
    """{"repo:tag": image id} of an engine's images (backend ImageInfo or Image rows)."""
    return {tag: getattr(image, "docker_id", None) or image.id for image in images for tag in image.tags or []}


def image_update(reference, running, tags):
    """Whether the reference's tag now names another image than the ones running, from the engine's
    own tags (no registry asked): {"reference", "pinned", "current", "running", "update_available",
    "message"}."""
    pinned = "@" in (reference or "")
    tag = normal_reference(reference)
    current = tags.get(tag, "")
    running = sorted({image for image in running if image})
    available = bool(current and running and any(image != current for image in running) and not pinned)
    if not current:
        message = f"{tag} is not tagged on this engine"
    elif available:
        message = f"{tag} now points to {current[7:19]}; running {', '.join(i[7:19] for i in running)}"
    else:
        message = f"{tag} is up to date"
    return {"reference": tag, "pinned": pinned, "current": current, "running": running,
            "update_available": available, "message": message}


def _container_row(engine_id, host_id, info, tags, now):
    return Container(
        engine_id=engine_id, docker_id=info.id, name=info.name[:255], image=info.image[:500],
        image_id=info.image_id[:100], digest=(info.image_digest or "")[:200], state=info.state[:16],
        health=(info.health or "")[:16], status=(info.status or "")[:200], ports=info.ports, labels=info.labels,
        networks=info.networks, mounts=info.mounts, restart_count=info.restart_count, exit_code=info.exit_code,
        created_at=when(info.created), started_at=when(info.started_at), finished_at=when(info.finished_at),
        service_id=info.service_id, service_name=info.service_name[:255], task_id=info.task_id,
        node_id=info.node_id, stack=info.stack[:64], host_id=host_id,
        image_update=image_update(info.image, [info.image_id], tags), seen=now)


def _spec_summary(info, network_names):
    try:
        return dataclasses.asdict(service_specs.from_engine(info.spec, network_names))
    except Exception:  # a spec the portal's model does not cover: keep what the list said
        log.warning("service %s: its spec could not be read back", info.name, exc_info=True)
        return {}


def endpoints(info, tasks, containers, nodes, local_node):
    """Where a service answers: each node for routing-mesh ports, each running task's binding for
    host-mode ports (the container's IPv4 binding for tasks on this engine's node: Docker 20.10
    reports IPv4 and IPv6 at different ports without saying which is which)."""
    found = []
    for port in info.ports:
        if port.get("mode", "ingress") == "ingress" and port.get("published"):
            found += [{"address": address, "port": port["published"], "protocol": port.get("protocol", "tcp"),
                       "target": port.get("target"), "node": node[:12], "slot": None}
                      for node, address in sorted(nodes.items())]
    if not any(p.get("mode") == "host" for p in info.ports):
        return found
    for task in sorted(tasks, key=lambda t: t.slot or 0):
        if task.state != "running" or task.desired_state != "running":
            continue
        address = nodes.get(task.node_id, "")
        bindings = []
        container = containers.get(task.container_id) if task.node_id == local_node else None
        if container is not None:
            bindings = [(p["private"], p.get("protocol", "tcp"), p["public"]) for p in container.ports
                        if p.get("public") and ":" not in (p.get("ip") or "")]
        else:
            seen = {}
            for p in task.ports:
                seen.setdefault((p.get("target"), p.get("protocol", "tcp")), p.get("published"))
            bindings = [(target, protocol, port) for (target, protocol), port in seen.items() if port]
        for target, protocol, port in bindings:
            found.append({"address": address, "port": port, "protocol": protocol, "target": target,
                          "node": task.node_id[:12], "slot": task.slot})
    return found


def publish_mode_of(info):
    modes = {p.get("mode", "ingress") for p in info.ports}
    if not modes:
        return PublishMode.NONE
    return modes.pop() if len(modes) == 1 else PublishMode.MIXED


def _service_row(engine_id, info, network_names, tasks, containers, nodes, local_node, tags, now):
    running_images = [containers[t.container_id].image_id for t in tasks
                      if t.state == "running" and t.container_id in containers]
    return Service(
        engine_id=engine_id, service_id=info.id, name=info.name[:255], image=info.image[:500], mode=info.mode[:16],
        replicas_desired=info.replicas_desired, replicas_running=info.replicas_running,
        spec=_spec_summary(info, network_names), version=info.version or 0, update_state=info.update_state[:32],
        update_message=(info.update_message or "")[:1000], endpoint_mode=info.endpoint_mode or "vip",
        publish_mode=publish_mode_of(info), ports=info.ports,
        endpoints=endpoints(info, tasks, containers, nodes, local_node), stack=info.stack[:64], labels=info.labels,
        created_at=when(info.created), updated_at=when(info.updated),
        image_update=image_update(info.image, running_images, tags), seen=now)


def _task_row(engine_id, info, service_pks, now):
    return Task(engine_id=engine_id, task_id=info.id, service_id=service_pks.get(info.service_id),
                service_docker_id=info.service_id, slot=info.slot, node_id=info.node_id,
                container_id=info.container_id, image=info.image[:500], state=info.state[:16],
                desired_state=info.desired_state[:16], message=(info.message or "")[:500],
                error=(info.error or "")[:1000], exit_code=info.exit_code, timestamp=when(info.timestamp),
                ports=info.ports, seen=now)


# Writing ------------------------------------------------------------------------------------

def _upsert(model, rows, unique, fields):
    if rows:
        model.objects.bulk_create(rows, update_conflicts=True, unique_fields=unique, update_fields=fields,
                                  batch_size=1000)


def _watched(row):
    return {name: getattr(row, name) for name in WATCHED}


def _changes(before, rows, action):
    """ContainerChange for each container that appeared, changed what WATCHED names, or went away."""
    changes = []
    seen = set()
    for row in rows:
        seen.add(row.docker_id)
        old = before.get(row.docker_id)
        after = _watched(row)
        if old is None or old["watched"] != after:
            changes.append(ContainerChange(row.pk, row.docker_id, row.name, old["watched"] if old else {}, after,
                                           row.service_id, action))
    for docker_id, old in before.items():
        if docker_id not in seen:
            changes.append(ContainerChange(None, docker_id, old["name"], old["watched"], {}, old["service_id"], action))
    return changes


def _before(engine_id, docker_ids=None):
    queryset = Container.objects.filter(engine_id=engine_id)
    if docker_ids is not None:
        queryset = queryset.filter(docker_id__in=docker_ids)
    return {docker_id: {"pk": pk, "name": name, "service_id": service_id,
                        "watched": dict(zip(WATCHED, values, strict=True))}
            for docker_id, pk, name, service_id, *values in queryset.values_list(
                "docker_id", "pk", "name", "service_id", *WATCHED)}


def resync(engine_id, snap, *, info=None):
    """Make the engine's rows what the snapshot says. Returns counts (and the changes, for tests)."""
    engine = Engine.objects.filter(pk=engine_id).only("pk", "environment_id", "host_id", "swarm_node_id").first()
    if engine is None:
        return None
    now = timezone.now()
    tags = tag_index(snap.images)
    local_node = info.node_id if info is not None else engine.swarm_node_id
    with transaction.atomic():
        before = _before(engine_id)
        previous_services = {row[0]: row[1:] for row in Service.objects.filter(engine_id=engine_id).values_list(
            "service_id", "replicas_running", "replicas_desired", "update_state", "image", "version")}
        containers = [_container_row(engine_id, engine.host_id, c, tags, now) for c in snap.containers]
        _upsert(Container, containers, ["engine", "docker_id"], CONTAINER_FIELDS)
        ids = {c.docker_id for c in containers}
        Container.objects.filter(engine_id=engine_id).exclude(docker_id__in=ids).delete()
        pks = dict(Container.objects.filter(engine_id=engine_id).values_list("docker_id", "pk"))
        for row in containers:
            row.pk = pks.get(row.docker_id)
        _sync_simple(engine_id, snap, now)
        by_container = {c.id: c for c in snap.containers}
        nodes = {n.id: n.address for n in snap.nodes}
        network_names = {n.id: n.name for n in snap.networks}
        tasks_of = {}
        for task in snap.tasks:
            tasks_of.setdefault(task.service_id, []).append(task)
        services = [_service_row(engine_id, s, network_names, tasks_of.get(s.id, []), by_container, nodes, local_node,
                                 tags, now) for s in snap.services]
        _upsert(Service, services, ["engine", "service_id"], SERVICE_FIELDS)
        Service.objects.filter(engine_id=engine_id).exclude(service_id__in=[s.service_id for s in services]).delete()
        service_pks = dict(Service.objects.filter(engine_id=engine_id).values_list("service_id", "pk"))
        tasks = [_task_row(engine_id, t, service_pks, now) for t in snap.tasks]
        _upsert(Task, tasks, ["engine", "task_id"], TASK_FIELDS)
        Task.objects.filter(engine_id=engine_id).exclude(task_id__in=[t.task_id for t in tasks]).delete()
        Engine.objects.filter(pk=engine_id).update(last_sync=now)
        changes = _changes(before, containers, "sync")
        changed_services = []
        for row in services:
            row.pk = service_pks.get(row.service_id)
            old = previous_services.get(row.service_id)
            if old != (row.replicas_running, row.replicas_desired, row.update_state, row.image, row.version):
                changed_services.append(row)
        gone_services = set(previous_services) - set(service_pks)
        items = _container_items(changes, containers, engine_id)
        items += [(publish.service_payload(s), "service", s.pk) for s in changed_services]
        items += [(publish.removed_payload("service", None, engine_id, sid), None, None) for sid in gone_services]
        environment_id = engine.environment_id
        transaction.on_commit(lambda: _announce(engine_id, environment_id, changes, items))
    return {"containers": len(containers), "images": len(snap.images), "networks": len(snap.networks),
            "volumes": len(snap.volumes), "nodes": len(snap.nodes), "services": len(services), "tasks": len(tasks),
            "changes": changes}


def _sync_simple(engine_id, snap, now):
    """Images, networks, volumes and nodes: upsert what is there, delete what is not."""
    _sync_images(engine_id, snap.images, now)
    _sync_networks(engine_id, snap.networks, now)
    _sync_volumes(engine_id, snap.volumes, now)
    _sync_nodes(engine_id, snap.nodes, now)


def _sync_images(engine_id, images, now):
    rows = [Image(engine_id=engine_id, docker_id=i.id, tags=i.tags, digests=i.digests, size=i.size or 0,
                  created_at=when(i.created), labels=i.labels or {}, seen=now) for i in images]
    _upsert(Image, rows, ["engine", "docker_id"], ["tags", "digests", "size", "created_at", "labels", "seen"])
    Image.objects.filter(engine_id=engine_id).exclude(docker_id__in=[r.docker_id for r in rows]).delete()


def _sync_nodes(engine_id, nodes, now):
    rows = [Node(engine_id=engine_id, node_id=n.id, hostname=n.hostname[:255], role=n.role,
                 availability=n.availability, state=n.state, address=n.address[:100],
                 engine_version=n.engine_version[:64], leader=n.leader, labels=n.labels, seen=now) for n in nodes]
    _upsert(Node, rows, ["engine", "node_id"], ["hostname", "role", "availability", "state", "address",
                                                 "engine_version", "leader", "labels", "seen"])
    Node.objects.filter(engine_id=engine_id).exclude(node_id__in=[r.node_id for r in rows]).delete()


def _sync_networks(engine_id, networks, now):
    rows = [Network(engine_id=engine_id, docker_id=n.id, name=n.name[:255], driver=n.driver, scope=n.scope,
                    attachable=n.attachable, ingress=n.ingress, internal=n.internal, labels=n.labels,
                    subnets=n.subnets, seen=now) for n in networks]
    _upsert(Network, rows, ["engine", "docker_id"], ["name", "driver", "scope", "attachable", "ingress", "internal",
                                                      "labels", "subnets", "seen"])
    Network.objects.filter(engine_id=engine_id).exclude(docker_id__in=[n.docker_id for n in rows]).delete()


def _sync_volumes(engine_id, volumes, now):
    rows = [Volume(engine_id=engine_id, name=v.name[:255], driver=v.driver, mountpoint=v.mountpoint[:1000],
                   scope=v.scope, labels=v.labels, options=v.options, seen=now) for v in volumes]
    _upsert(Volume, rows, ["engine", "name"], ["driver", "mountpoint", "scope", "labels", "options", "seen"])
    Volume.objects.filter(engine_id=engine_id).exclude(name__in=[v.name for v in rows]).delete()


def _container_items(changes, rows, engine_id):
    by_id = {row.docker_id: row for row in rows}
    items = []
    for change in changes:
        row = by_id.get(change.docker_id)
        if row is None:
            items.append((publish.removed_payload("container", None, engine_id, change.name), None, None))
        else:
            items.append((publish.container_payload(row), "container", row.pk))
    return items


def _announce(engine_id, environment_id, changes, items):
    publish.send(environment_id, items)
    if changes:
        engine = Engine.objects.filter(pk=engine_id).first()
        if engine is not None:
            on_container_change(engine, changes)


def on_container_change(engine, changes):
    """Tell self-healing and autoscaling (signals.container_changed) which containers changed.
    Called on commit, in the watcher; a receiver that raises is logged and does not stop the others."""
    for receiver, result in container_changed.send_robust(sender=Engine, engine=engine, changes=list(changes)):
        if isinstance(result, Exception):
            log.error("container_changed receiver %s failed: %s", getattr(receiver, "__name__", receiver), result)


# Events ---------------------------------------------------------------------------------------

class EngineSync:
    """One engine's rows kept current from its event stream (one per watcher thread).

    Container events inspect the container at once (what a browser must see within 2 s); service
    and task changes are batched: a service is marked and flush() refreshes marked services with
    their tasks, at most a few times a second, so a scale to 50 replicas is not 50 refreshes."""

    def __init__(self, engine_id):
        self.engine_id = engine_id
        self.lock = threading.Lock()
        self.dirty = set()
        self.tags = None  # {"repo:tag": image id}; None until loaded
        self.lists = set()  # "images", "networks", "volumes", "nodes" to refresh on flush

    def _engine(self):
        return Engine.objects.filter(pk=self.engine_id).only("pk", "environment_id", "host_id",
                                                             "swarm_node_id").first()

    def resync(self, client):
        """Probe the engine and resync everything; returns (counts, EngineInfo)."""
        info = backend.probe(client)
        snap = backend.snapshot(client)
        with self.lock:
            self.dirty.clear()
            self.lists.clear()
        result = resync(self.engine_id, snap, info=info)
        self.tags = tag_index(snap.images)
        return result, info

    def event(self, event, client):
        """Apply one engine event."""
        if event.kind == "container":
            if event.action in IGNORED_CONTAINER_ACTIONS:
                return
            service_id = event.attributes.get("com.docker.swarm.service.id", "")
            if event.action == "stop":
                self.note_stop(event)
            self.refresh_container(client, event.id, event.action)
            if service_id:
                self.mark(service_id)
        elif event.kind == "service":
            self.mark(event.id)
        elif event.kind in ("image", "network", "volume", "node"):
            with self.lock:
                self.lists.add(event.kind + "s")

    def note_stop(self, event):
        """Remember that the engine stopped the container on request ("stop" comes with docker stop and
        the stop API, never with a crash or docker kill), so its exit is not taken for a crash."""
        at = when(event.time) or timezone.now()
        Container.objects.filter(engine_id=self.engine_id, docker_id=event.id).update(stop_requested_at=at)

    def mark(self, service_id):
        with self.lock:
            self.dirty.add(service_id)

    def refresh_container(self, client, docker_id, action="event"):
        """Inspect one container and store it (or its removal)."""
        return self.store(inv.container_or_none(client, docker_id), docker_id, action)

    def store(self, info, docker_id, action):
        """Store a ContainerInfo (None: the container is gone); announce changes on commit."""
        engine = self._engine()
        if engine is None:
            return None
        if self.tags is None:
            self.tags = tag_index(Image.objects.filter(engine_id=self.engine_id).only("docker_id", "tags"))
        with transaction.atomic():
            before = _before(self.engine_id, [docker_id])
            rows = []
            if info is None:
                Container.objects.filter(engine_id=self.engine_id, docker_id=docker_id).delete()
            else:
                row = _container_row(self.engine_id, engine.host_id, info, self.tags, timezone.now())
                _upsert(Container, [row], ["engine", "docker_id"], CONTAINER_FIELDS)
                row.pk = Container.objects.filter(engine_id=self.engine_id, docker_id=docker_id).values_list(
                    "pk", flat=True).first()
                rows.append(row)
            changes = _changes(before, rows, action)
            items = _container_items(changes, rows, self.engine_id) if changes else (
                [(publish.container_payload(rows[0]), "container", rows[0].pk)] if rows else [])
            environment_id = engine.environment_id
            transaction.on_commit(lambda: _announce(self.engine_id, environment_id, changes, items))
        return rows[0] if rows else None

    def flush(self, client):
        """Refresh the services marked since the last flush (with their tasks), and lists that changed."""
        with self.lock:
            dirty, self.dirty = self.dirty, set()
            lists, self.lists = self.lists, set()
        if lists:
            self.refresh_lists(client, lists)
        for service_id in sorted(dirty):
            self.refresh_service(client, service_id)

    def refresh_lists(self, client, kinds):
        now = timezone.now()
        with transaction.atomic():
            if "images" in kinds:
                images = inv.images(client)
                _sync_images(self.engine_id, images, now)
                self.tags = tag_index(images)
                self._recheck_image_updates()
            if "networks" in kinds:
                _sync_networks(self.engine_id, inv.networks(client), now)
            if "volumes" in kinds:
                _sync_volumes(self.engine_id, inv.volumes(client), now)
            if "nodes" in kinds and inv.is_manager(client):
                _sync_nodes(self.engine_id, inv.nodes(client), now)

    def _recheck_image_updates(self):
        """A tag moved (docker tag, pull): recompute every container's and service's update flag."""
        engine = self._engine()
        items = []
        for row in Container.objects.filter(engine_id=self.engine_id).only("pk", "image", "image_id", "image_update",
                                                                          "engine_id", "name", "state", "health",
                                                                          "status", "exit_code", "restart_count",
                                                                          "service_name"):
            verdict = image_update(row.image, [row.image_id], self.tags)
            if verdict != row.image_update:
                row.image_update = verdict
                Container.objects.filter(pk=row.pk).update(image_update=verdict)
                items.append((publish.container_payload(row), "container", row.pk))
        for service in Service.objects.filter(engine_id=self.engine_id):
            running = list(Container.objects.filter(engine_id=self.engine_id, service_id=service.service_id,
                                                    state="running").values_list("image_id", flat=True))
            verdict = image_update(service.image, running, self.tags)
            if verdict != service.image_update:
                service.image_update = verdict
                Service.objects.filter(pk=service.pk).update(image_update=verdict)
                items.append((publish.service_payload(service), "service", service.pk))
        if engine is not None and items:
            environment_id = engine.environment_id
            transaction.on_commit(lambda: publish.send(environment_id, items))

    def refresh_service(self, client, service_id):
        """Re-read one service and its tasks (or remove it when the engine no longer has it)."""
        info = inv.service(client, service_id)
        task_infos = inv.tasks(client, service_id=service_id) if info is not None else []
        return self.store_service(service_id, info, task_infos)

    def store_service(self, service_id, info, task_infos):
        """Store a ServiceInfo and its TaskInfos (info None: the service is gone)."""
        engine = self._engine()
        if engine is None:
            return None
        if self.tags is None:
            self.tags = tag_index(Image.objects.filter(engine_id=self.engine_id).only("docker_id", "tags"))
        now = timezone.now()
        environment_id = engine.environment_id
        with transaction.atomic():
            if info is None:
                row = Service.objects.filter(engine_id=self.engine_id, service_id=service_id).first()
                if row is not None:
                    items = [(publish.removed_payload("service", row.pk, self.engine_id, row.name), "service", row.pk)]
                    row.delete()
                    transaction.on_commit(lambda: publish.send(environment_id, items))
                return None
            containers = {c.docker_id: c for c in Container.objects.filter(
                engine_id=self.engine_id, service_id=service_id).only("docker_id", "ports", "image_id", "state")}
            nodes = dict(Node.objects.filter(engine_id=self.engine_id).values_list("node_id", "address"))
            network_names = dict(Network.objects.filter(engine_id=self.engine_id).values_list("docker_id", "name"))
            row = _service_row(self.engine_id, info, network_names, task_infos, containers, nodes,
                               engine.swarm_node_id, self.tags, now)
            _upsert(Service, [row], ["engine", "service_id"], SERVICE_FIELDS)
            row.pk = Service.objects.filter(engine_id=self.engine_id, service_id=service_id).values_list(
                "pk", flat=True).first()
            tasks = [_task_row(self.engine_id, t, {service_id: row.pk}, now) for t in task_infos]
            _upsert(Task, tasks, ["engine", "task_id"], TASK_FIELDS)
            Task.objects.filter(engine_id=self.engine_id, service_docker_id=service_id).exclude(
                task_id__in=[t.task_id for t in tasks]).delete()
            items = [(publish.service_payload(row), "service", row.pk)]
            items += [(publish.task_payload(t), "service", row.pk) for t in tasks if t.desired_state == "running"
                      or t.state in ("failed", "rejected")][:100]
            transaction.on_commit(lambda: publish.send(environment_id, items))
        return row
