"""Telling browsers what changed: one small payload per engine, container or service, sent to the
environment's group (lists) and the object's group (its page). Sent after commit, best effort: a
page that reconnects reloads its rows."""
from ops_portal.core import streams

from . import groups


def engine_payload(engine):
    return {"kind": "engine", "id": engine.pk, "name": engine.name, "state": engine.state, "error": engine.error,
            "version": engine.version, "api_version": engine.api_version, "swarm_role": engine.swarm_role,
            "last_seen": engine.last_seen.isoformat() if engine.last_seen else None}


def container_payload(container):
    return {"kind": "container", "id": container.pk, "engine": container.engine_id, "name": container.name,
            "state": container.state, "health": container.health, "status": container.status,
            "image": container.image, "exit_code": container.exit_code, "restart_count": container.restart_count,
            "service": container.service_name, "update": bool((container.image_update or {}).get("update_available"))}


def removed_payload(kind, pk, engine_id, name):
    return {"kind": kind, "id": pk, "engine": engine_id, "name": name, "removed": True}


def service_payload(service):
    return {"kind": "service", "id": service.pk, "engine": service.engine_id, "name": service.name,
            "image": service.image, "mode": service.mode, "replicas_desired": service.replicas_desired,
            "replicas_running": service.replicas_running, "update_state": service.update_state,
            "update_message": service.update_message, "publish_mode": service.publish_mode,
            "endpoint_mode": service.endpoint_mode, "endpoints": service.endpoints, "version": service.version,
            "update": bool((service.image_update or {}).get("update_available"))}


def task_payload(task):
    return {"kind": "task", "id": task.task_id, "slot": task.slot, "node": task.node_id, "state": task.state,
            "desired_state": task.desired_state, "error": task.error, "message": task.message,
            "container": task.container_id[:12], "image": task.image,
            "timestamp": task.timestamp.isoformat() if task.timestamp else None}


# A resync that changes many objects at once (a first sync, a restarted engine) tells object pages
# of the first ones only: each object is one Channels message, and nobody has hundreds of object
# pages open; the environment's list stream gets every change in one message.
OBJECT_MESSAGES_PER_SEND = 100


def send(environment_id, items):
    """items: [(payload, object kind or None, object pk)] of one environment."""
    if not items:
        return
    streams.publish_many(groups.environment(environment_id), [payload for payload, _, _ in items])
    by_object = {}
    for payload, kind, pk in items:
        if kind is not None:
            group = groups.obj(kind, pk, environment_id)
            if group in by_object or len(by_object) < OBJECT_MESSAGES_PER_SEND:
                by_object.setdefault(group, []).append(payload)
    for group, payloads in by_object.items():
        streams.publish_many(group, payloads)


def publish_engine(engine):
    send(engine.environment_id, [(engine_payload(engine), "engine", engine.pk)])
