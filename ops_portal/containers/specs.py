"""Specs written in the portal (JSON) read into the backend's checked dataclasses, with the
publishing defaults of the engine they go to; SpecError becomes field errors for the API (400)."""
import hashlib
import json
import os

from django.conf import settings
from django.core.exceptions import ValidationError

from schedulers import container as backend
from schedulers.container.validate import SpecError

from .choices import Transport

IPVS_PROC = "/proc/sys/net/ipv4/vs"
MAX_SPEC = 64 * 1024


def publish_defaults(engine):
    """(publish mode, endpoint mode or None) for ports whose mode is not given.

    The routing mesh (ingress, VIP) stays the default where the engine's kernel has IPVS; a unix
    socket engine runs on this machine's kernel, so without IPVS here it publishes in host mode
    with DNS round robin."""
    mode = settings.CONTAINERS_PUBLISH_MODE
    if mode == "auto":
        mode = "host" if engine.transport == Transport.UNIX and not os.path.exists(IPVS_PROC) else "ingress"
    return (mode, "dnsrr") if mode == "host" else (mode, None)


def field_errors(exc, prefix):
    """A SpecError as field errors {"spec.ports[0].published": [messages]} (prefix.field path)."""
    return ValidationError({f"{prefix}.{name}" if name != prefix else name: list(messages)
                            for name, messages in exc.errors.items()})


def _json_object(text, field):
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or len(text) > MAX_SPEC:
        raise ValidationError({field: [f"Give the spec as a JSON object of at most {MAX_SPEC // 1024} KiB."]})
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationError({field: [f"Not valid JSON: {exc}"]}) from None
    if not isinstance(data, dict):
        raise ValidationError({field: ["Give the spec as a JSON object."]})
    return data


def with_port_defaults(data, engine):
    """Ports without a mode get the engine's default publish mode (and dnsrr with host mode)."""
    mode, endpoint_mode = publish_defaults(engine)
    data = dict(data)
    ports = data.get("ports")
    if isinstance(ports, list):
        data["ports"] = [{**p, "mode": p.get("mode", mode)} if isinstance(p, dict) else p for p in ports]
        if endpoint_mode and "endpoint_mode" not in data and all(
                isinstance(p, dict) and p.get("mode") == "host" for p in data["ports"]):
            data["endpoint_mode"] = endpoint_mode
    return data


def service_spec(data, engine=None, field="spec"):
    """A checked ServiceSpec from JSON text or a dict; ValidationError({field: [...]}) if not."""
    data = _json_object(data, field)
    if engine is not None:
        data = with_port_defaults(data, engine)
    try:
        return backend.check_service(backend.ServiceSpec.from_dict(data))
    except SpecError as exc:
        raise field_errors(exc, field) from None


def container_spec(data, field="spec"):
    data = _json_object(data, field)
    try:
        return backend.check_container(backend.ContainerSpec.from_dict(data))
    except SpecError as exc:
        raise field_errors(exc, field) from None


def load_stack(stack, engine=None):
    """The Stack a Compose text deploys to (backend compose.load); ValidationError on "compose"."""
    engine = engine or stack.engine
    mode, endpoint_mode = publish_defaults(engine)
    try:
        return backend.load_compose(stack.compose, stack.name, default_publish_mode=mode,
                                    default_endpoint_mode=endpoint_mode)
    except SpecError as exc:
        raise field_errors(exc, "compose") from None


def compose_hash(text):
    return hashlib.sha256(text.encode()).hexdigest()


def stored_spec(service):
    """The ServiceSpec a Service row holds (as the watcher read it back), or None."""
    if not service.spec:
        return None
    try:
        return backend.ServiceSpec.from_dict(service.spec)
    except SpecError:
        return None
