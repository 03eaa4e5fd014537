"""Reaching an engine from its row: the backend's EngineSpec, a client, a check, and noting what the
engine said about itself (observed, not audited)."""
from django.utils import timezone

from schedulers import container as backend

from .choices import BACKEND_STATES, EngineState, SwarmRole, Transport
from .models import Engine
from .publish import publish_engine

CONNECT_TIMEOUT = 10.0
CHECK_TIMEOUT = 5.0


def engine_spec(engine) -> backend.EngineSpec:
    """How the backend reaches the engine. SSH engines go through their inventory host: its address,
    login, credential and pinned host key."""
    if engine.transport == Transport.SSH:
        host = engine.host
        credential = host.credential if host is not None else None
        return backend.EngineSpec(engine.name, engine.url, ssh_private_key=credential.private_key if credential else "",
                                  ssh_passphrase=credential.passphrase if credential else "",
                                  ssh_host_key=host.host_key if host is not None else "")
    if engine.transport == Transport.TCP:
        return backend.EngineSpec(engine.name, engine.url, tls_ca=engine.tls_ca, tls_cert=engine.tls_cert,
                                  tls_key=engine.tls_key, tls_verify=engine.tls_verify)
    return backend.EngineSpec(engine.name, engine.url)


def spec_fingerprint(engine):
    """What, when it changes, means the watcher must reconnect."""
    spec = engine_spec(engine)
    return (spec.url, spec.tls_ca, spec.tls_cert, spec.tls_key, spec.tls_verify, spec.ssh_private_key,
            spec.ssh_passphrase, spec.ssh_host_key, engine.environment_id, engine.host_id)


def connect(engine, timeout=CONNECT_TIMEOUT):
    """A client of the engine; schedulers.container.EngineError in plain words if not."""
    return backend.connect(engine_spec(engine), timeout=timeout)


def load(engine_id):
    return Engine.objects.select_related("host__credential", "environment").filter(pk=engine_id).first()


def info_fields(info):
    """Engine columns from a backend EngineInfo."""
    return {"version": info.version[:64], "api_version": info.api_version[:16], "os": info.os[:200],
            "swarm_role": info.swarm_role if info.swarm_role in SwarmRole.values else SwarmRole.NONE,
            "swarm_node_id": info.node_id[:64],
            "info": {"negotiated_api_version": info.negotiated_api_version, "min_api_version": info.min_api_version,
                     "os_type": info.os_type, "arch": info.arch, "kernel": info.kernel, "hostname": info.hostname,
                     "cpus": info.cpus, "memory": info.memory, "swarm_state": info.swarm_state,
                     "node_address": info.node_address, "containers": info.containers, "images": info.images,
                     "problems": info.problems}}


def note(engine_id, *, state, error="", info=None, synced=False):
    """Store what the engine said (or why it could not be reached) and tell the browsers."""
    fields = {"state": state, "error": str(error)[:1000]}
    now = timezone.now()
    if state in (EngineState.OK, EngineState.DEGRADED):
        fields["last_seen"] = now
    if info is not None:
        fields.update(info_fields(info))
    if synced:
        fields["last_sync"] = now
    updated = Engine.objects.filter(pk=engine_id).update(**fields)
    if updated:
        engine = Engine.objects.filter(pk=engine_id).only("pk", "environment_id", "name", "state", "error",
                                                           "version", "api_version", "swarm_role",
                                                           "last_seen").first()
        if engine is not None:
            publish_engine(engine)
    return updated


def note_status(engine_id, status):
    """Store a backend EngineStatus (from check())."""
    state = BACKEND_STATES.get(status.state, EngineState.DOWN)
    error = "" if state == EngineState.OK else status.message
    return note(engine_id, state=state, error=error, info=status.info)


def note_error(engine_id, exc):
    """Store an EngineError (or anything the backend raised) in plain words."""
    state = BACKEND_STATES.get(getattr(exc, "state", "down"), EngineState.DOWN)
    return note(engine_id, state=state, error=str(exc))


def check(engine, timeout=CHECK_TIMEOUT):
    """Connect, probe, close; store and return the engine's state (never raises for the engine)."""
    status = backend.check(engine_spec(engine), timeout=timeout)
    note_status(engine.pk, status)
    return status
