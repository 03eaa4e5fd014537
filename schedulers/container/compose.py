"""Compose files read as stacks: parsed, checked, and mapped to ServiceSpecs. No I/O (see stacks.py).

    stack = load(text, "shop", default_publish_mode="host")    # SpecError with field paths

The file is checked against the Compose specification's JSON schema (compose-spec.json,
vendored from github.com/compose-spec/compose-spec, commit 170098ba, Apache-2.0) and then
against what Swarm services can do: keys Swarm would ignore (privileged, devices,
network_mode, build, …) are refused rather than silently dropped, and so is variable
interpolation (`$VAR`, `${VAR}`; write `$$` for a literal `$`): the portal has no shell
environment to take values from.

Everything a stack makes carries com.docker.stack.namespace=<stack>, as the docker CLI does,
so `docker stack ls/ps/rm` see portal stacks and the other way round.
"""
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from .inventory import STACK_LABEL
from .specs import HealthCheck, Mount, PortSpec, Resources, RestartPolicy, ServiceSpec, UpdatePolicy, check_service
from .validate import Errors, SpecError
from .validate import name as check_name

SCHEMA_PATH = Path(__file__).with_name("compose-spec.json")
IMAGE_LABEL = "com.docker.stack.image"
SERVICE_KEYS = {"image", "command", "entrypoint", "environment", "ports", "deploy", "networks", "volumes",
                "healthcheck", "labels", "cap_add", "cap_drop", "user", "working_dir", "stop_grace_period"}
DEPLOY_KEYS = {"mode", "replicas", "resources", "update_config", "rollback_config", "restart_policy", "placement",
               "labels", "endpoint_mode"}
_VARIABLE = re.compile(r"(?<!\$)\$(?:\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")
_schema_validator = None


@dataclass
class NetworkSpec:
    name: str
    driver: str = "overlay"
    attachable: bool = False
    internal: bool = False
    labels: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    external: bool = False


@dataclass
class Stack:
    name: str
    services: dict  # full service name -> ServiceSpec
    networks: dict  # full name -> NetworkSpec


def _validator():
    global _schema_validator
    if _schema_validator is None:
        _schema_validator = jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text()))
    return _schema_validator


def _path(parts):
    return ".".join(str(p) for p in parts) or "compose"


def _no_variables(node, errors, where=""):
    """Refuse interpolation anywhere; unescape $$ to $."""
    if isinstance(node, dict):
        return {k: _no_variables(val, errors, f"{where}.{k}" if where else str(k)) for k, val in node.items()}
    if isinstance(node, list):
        return [_no_variables(val, errors, f"{where}[{i}]") for i, val in enumerate(node)]
    if isinstance(node, str):
        if _VARIABLE.search(node):
            errors.add(where, f"variable interpolation ({_VARIABLE.search(node).group(0)}) is not supported: "
                              f"write the value, or $$ for a literal $")
        return node.replace("$$", "$")
    return node


def load(text: str, stack_name: str, *, default_publish_mode="ingress", default_endpoint_mode=None) -> Stack:
    """Parse, check against the Compose schema and Swarm's abilities, and map to ServiceSpecs."""
    errors = Errors()
    check_name(stack_name, errors, "stack", what="stack name", max_length=40)
    errors.raise_if_any()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError({"compose": [f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"]})
    if not isinstance(doc, dict):
        raise SpecError({"compose": ["a Compose file is a mapping with a services key"]})
    for error in sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errors.add(_path(error.absolute_path), error.message)
    errors.raise_if_any()
    doc = _no_variables(doc, errors)
    for key in doc:
        if key not in ("services", "networks", "volumes", "name", "version") and not str(key).startswith("x-"):
            errors.add(key, "not supported for a stack")
    networks = _networks(doc.get("networks") or {}, stack_name, errors)
    volumes = _volumes(doc.get("volumes") or {}, stack_name, errors)
    specs = {}
    for short, body in (doc.get("services") or {}).items():
        spec = _service(short, body or {}, stack_name, networks, volumes, errors, default_publish_mode,
                        default_endpoint_mode)
        if spec is not None:
            specs[spec.name] = spec
    if not specs and not errors:
        errors.add("services", "the stack has no services")
    errors.raise_if_any()
    used = {n for spec in specs.values() for n in spec.networks}
    return Stack(stack_name, specs, {name: net for name, net in networks.items() if name in used})


def _networks(raw, stack, errors):
    result = {}
    default = f"{stack}_default"
    result[default] = NetworkSpec(default, labels={STACK_LABEL: stack})
    for key, body in raw.items():
        body = body or {}
        where = f"networks.{key}"
        for extra in set(body) - {"driver", "driver_opts", "attachable", "internal", "labels", "external", "name"}:
            errors.add(f"{where}.{extra}", "not supported for a stack network")
        external = bool(body.get("external"))
        full = body.get("name") or (key if external else f"{stack}_{key}")
        labels = dict(_labels(body.get("labels"))) if not external else {}
        if not external:
            labels[STACK_LABEL] = stack
        result[full] = NetworkSpec(full, driver=body.get("driver") or "overlay",
                                   attachable=bool(body.get("attachable")), internal=bool(body.get("internal")),
                                   labels=labels,
                                   options={k: str(v) for k, v in (body.get("driver_opts") or {}).items()},
                                   external=external)
        result[f"key:{key}"] = result[full]
    return result


def _volumes(raw, stack, errors):
    result = {}
    for key, body in raw.items():
        body = body or {}
        for extra in set(body) - {"driver", "driver_opts", "labels", "external", "name"}:
            errors.add(f"volumes.{key}.{extra}", "not supported for a stack volume")
        external = bool(body.get("external"))
        labels = dict(_labels(body.get("labels")))
        if not external:
            labels[STACK_LABEL] = stack
        result[key] = {"name": body.get("name") or (key if external else f"{stack}_{key}"),
                       "driver": body.get("driver") or "", "labels": labels, "external": external,
                       "options": {k: str(v) for k, v in (body.get("driver_opts") or {}).items()}}
    return result


def _labels(value):
    if isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {str(k): "" if v is None else str(v) for k, v in (value or {}).items()}


def _argv(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _service(short, body, stack, networks, volumes, errors, publish_mode, endpoint_mode):
    where = f"services.{short}"
    for key in sorted(set(body) - SERVICE_KEYS):
        if not str(key).startswith("x-"):
            errors.add(f"{where}.{key}", "not supported by Swarm services (docker stack deploy would ignore it): "
                                         "refused rather than ignored")
    deploy = body.get("deploy") or {}
    for key in sorted(set(deploy) - DEPLOY_KEYS):
        errors.add(f"{where}.deploy.{key}", "not supported here")
    if "image" not in body:
        errors.add(f"{where}.image", "a stack service needs an image (build is not supported)")
        return None
    env = {}
    raw_env = body.get("environment") or {}
    items = raw_env.items() if isinstance(raw_env, dict) else [(e.split("=", 1) + [None])[:2] for e in raw_env]
    for key, value in items:
        if value is None:
            errors.add(f"{where}.environment.{key}", "takes its value from the deploying shell: give a value")
        else:
            env[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    resources = deploy.get("resources") or {}
    limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
    for part, body_part in (("limits", limits), ("reservations", reservations)):
        for key in set(body_part) - {"cpus", "memory"}:
            errors.add(f"{where}.deploy.resources.{part}.{key}", "not supported here")
    placement = deploy.get("placement") or {}
    for key in set(placement) - {"constraints"}:
        errors.add(f"{where}.deploy.placement.{key}", "not supported here")
    mode = deploy.get("endpoint_mode") or endpoint_mode or ("dnsrr" if publish_mode == "host" else "vip")
    service_networks = body.get("networks") or ["default"]
    if isinstance(service_networks, dict):
        for key, value in service_networks.items():
            if value:
                errors.add(f"{where}.networks.{key}", "aliases and addresses are not supported here")
        service_networks = list(service_networks)
    names = []
    for key in service_networks:
        net = networks.get(f"{stack}_default") if key == "default" else networks.get(f"key:{key}")
        if net is None:
            errors.add(f"{where}.networks", f"network {key} is not declared under networks")
        else:
            names.append(net.name)
    labels = _labels(deploy.get("labels"))
    labels.update({STACK_LABEL: stack, IMAGE_LABEL: body["image"]})
    container_labels = _labels(body.get("labels"))
    container_labels[STACK_LABEL] = stack
    health = _health(body.get("healthcheck"))
    spec = ServiceSpec(
        name=f"{stack}_{short}", image=body["image"],
        replicas=deploy.get("replicas", 1) if deploy.get("replicas") is not None else 1,
        mode=deploy.get("mode") or "replicated", command=_argv(body.get("entrypoint")),
        args=_argv(body.get("command")), env=env,
        ports=[p for i, raw in enumerate(body.get("ports") or [])
               if (p := _port(raw, publish_mode, errors, f"{where}.ports[{i}]")) is not None],
        resources=Resources(cpu_limit=_float(limits.get("cpus")), cpu_reservation=_float(reservations.get("cpus")),
                            memory_limit=limits.get("memory"), memory_reservation=reservations.get("memory")),
        constraints=list(placement.get("constraints") or []), healthcheck=health,
        restart_policy=_restart(deploy.get("restart_policy")),
        update_config=_update(deploy.get("update_config")), rollback_config=_update(deploy.get("rollback_config")),
        labels=labels, container_labels=container_labels, networks=names, endpoint_mode=mode,
        mounts=[m for i, raw in enumerate(body.get("volumes") or [])
                if (m := _mount(raw, volumes, errors, f"{where}.volumes[{i}]")) is not None],
        cap_add=list(body.get("cap_add") or []), cap_drop=list(body.get("cap_drop") or []), user=body.get("user"),
        workdir=body.get("working_dir"), stop_grace_period=body.get("stop_grace_period"),
    )
    try:
        return check_service(spec)
    except SpecError as exc:
        for key, messages in exc.errors.items():
            for message in messages:
                errors.add(f"{where}.{_compose_path(key)}", message)
        return None


# ServiceSpec field -> where it came from in the Compose file, so errors point at the file's lines.
_FIELD_PATHS = [("resources.cpu_limit", "deploy.resources.limits.cpus"),
                ("resources.memory_limit", "deploy.resources.limits.memory"),
                ("resources.cpu_reservation", "deploy.resources.reservations.cpus"),
                ("resources.memory_reservation", "deploy.resources.reservations.memory"),
                ("update_config", "deploy.update_config"), ("rollback_config", "deploy.rollback_config"),
                ("restart_policy", "deploy.restart_policy"), ("replicas", "deploy.replicas"),
                ("mode", "deploy.mode"), ("endpoint_mode", "deploy.endpoint_mode"),
                ("constraints", "deploy.placement.constraints"), ("labels", "deploy.labels"),
                ("container_labels", "labels"), ("args", "command"), ("command", "entrypoint"),
                ("env", "environment"), ("mounts", "volumes"), ("workdir", "working_dir")]


def _compose_path(key):
    for field_name, path in _FIELD_PATHS:
        if key == field_name or key.startswith((field_name + ".", field_name + "[")):
            return path + key[len(field_name):]
    return key


def _float(value):
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return value


def _port(raw, publish_mode, errors, where):
    if isinstance(raw, dict):
        published = raw.get("published")
        if isinstance(published, str):
            if not published.isdigit():
                errors.add(f"{where}.published", "port ranges are not supported here")
                return None
            published = int(published)
        return PortSpec(target=raw.get("target"), published=published, protocol=raw.get("protocol") or "tcp",
                        mode=raw.get("mode") or publish_mode)
    text = str(raw)
    body, _, protocol = text.partition("/")
    parts = body.split(":")
    if len(parts) > 2:
        errors.add(where, f"{text!r}: a host address is not supported by Swarm services")
        return None
    if any(not p.isdigit() for p in parts):
        errors.add(where, f"{text!r}: give [published:]target with single port numbers")
        return None
    target = int(parts[-1])
    published = int(parts[0]) if len(parts) == 2 else None
    return PortSpec(target=target, published=published, protocol=protocol or "tcp", mode=publish_mode)


def _mount(raw, volumes, errors, where):
    if isinstance(raw, str):
        parts = raw.split(":")
        if len(parts) == 1:
            return Mount(target=parts[0])  # an anonymous volume
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        raw = {"type": "bind" if source.startswith(("/", ".", "~")) else "volume", "source": source,
               "target": target, "read_only": "ro" in options}
    kind = raw.get("type", "volume")
    source = raw.get("source") or ""
    extra = set(raw) - {"type", "source", "target", "read_only", "volume"}
    if extra:
        errors.add(where, f"not supported here: {', '.join(sorted(extra))}")
    if kind == "bind" and not source.startswith("/"):
        errors.add(f"{where}.source", f"{source!r}: bind sources must be absolute paths (there is no project "
                                      f"directory on the engine's nodes)")
        return None
    if kind == "volume" and source:
        declared = volumes.get(source)
        if declared is None:
            errors.add(f"{where}.source", f"volume {source} is not declared under volumes")
            return None
        return Mount(target=raw.get("target"), source=declared["name"], type="volume",
                     read_only=bool(raw.get("read_only")), volume_driver=declared["driver"],
                     volume_options=declared["options"], volume_labels=declared["labels"])
    return Mount(target=raw.get("target"), source=source, type=kind, read_only=bool(raw.get("read_only")))


def _health(raw):
    if not raw:
        return None
    if raw.get("disable"):
        return HealthCheck(test=["NONE"])
    test = raw.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    return HealthCheck(test=list(test or []), interval=raw.get("interval"), timeout=raw.get("timeout"),
                       retries=raw.get("retries"), start_period=raw.get("start_period"))


def _restart(raw):
    if not raw:
        return None
    return RestartPolicy(condition=raw.get("condition", "any"), delay=raw.get("delay"),
                         max_attempts=raw.get("max_attempts"), window=raw.get("window"))


def _update(raw):
    if not raw:
        return None
    return UpdatePolicy(parallelism=raw.get("parallelism", 1), delay=raw.get("delay", 0) or 0,
                        order=raw.get("order", "stop-first"), failure_action=raw.get("failure_action", "pause"),
                        monitor=raw.get("monitor"), max_failure_ratio=raw.get("max_failure_ratio", 0.0))
