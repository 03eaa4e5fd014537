"""Which privileged features a container or service spec asks for, so the portal can refuse them
to non-administrators. Pure: no engine, no I/O.

Any of these gives a container's user root on the host, or close to it: privileged mode, the
host's network/PID/IPC/UTS/user namespaces (or another container's), added capabilities,
devices, security options that switch confinement off, and bind mounts of host paths — also
the disguised kind, a named volume of the local driver with `o=bind` and a `device` path.
Bind sources are compared with the allow-list after normalising ("/srv/data/../../etc" is
/etc); symbolic links on the host cannot be seen from here, so an allow-list must name
directories only administrators can write to.
"""
import posixpath
from dataclasses import dataclass

from .specs import ContainerSpec, ServiceSpec

UNCONFINED = ("seccomp=unconfined", "seccomp:unconfined", "apparmor=unconfined", "apparmor:unconfined",
              "label=disable", "label:disable", "systempaths=unconfined")


@dataclass(frozen=True)
class Finding:
    feature: str  # privileged, host_network, host_pid, host_ipc, host_uts, host_userns, shared_namespace,
    #               cap_add, device, security_opt, bind_mount
    field: str  # where in the spec
    detail: str  # plain words


def _normal(path):
    return posixpath.normpath("/" + str(path).lstrip("/")) if path else ""


def path_allowed(path, allowed_paths) -> bool:
    """True when path is one of the allowed paths or below one (component-wise)."""
    path = _normal(path)
    for allowed in allowed_paths or ():
        allowed = _normal(allowed)
        if allowed == "/" or path == allowed or path.startswith(allowed + "/"):
            return True
    return False


def _mounts(mounts, allowed_paths, found):
    for i, mount in enumerate(mounts or []):
        where = f"mounts[{i}]"
        if mount.type == "bind" and not path_allowed(mount.source, allowed_paths):
            found.append(Finding("bind_mount", f"{where}.source",
                                 f"bind-mounts the host path {_normal(mount.source)}, outside the allowed paths"))
        options = {str(k).lower(): str(val) for k, val in (mount.volume_options or {}).items()}
        device = options.get("device")
        if mount.type == "volume" and device and "bind" in options.get("o", "").split(","):
            if not path_allowed(device, allowed_paths):
                found.append(Finding("bind_mount", f"{where}.volume_options",
                                     f"a volume bound to the host path {_normal(device)} (local driver, o=bind), "
                                     f"outside the allowed paths"))


def _capabilities(caps, found):
    for i, cap in enumerate(caps or []):
        found.append(Finding("cap_add", f"cap_add[{i}]", f"adds the capability {cap}"))


def privileged_features(spec, allowed_paths=()) -> list[Finding]:
    """The privileged features a ContainerSpec or ServiceSpec uses; [] when it uses none."""
    found = []
    if isinstance(spec, ContainerSpec):
        if spec.privileged:
            found.append(Finding("privileged", "privileged", "runs privileged: every device and capability"))
        for name, feature, what in (("network_mode", "host_network", "network"), ("pid_mode", "host_pid", "PID"),
                                    ("ipc_mode", "host_ipc", "IPC"), ("uts_mode", "host_uts", "UTS"),
                                    ("userns_mode", "host_userns", "user")):
            value = (getattr(spec, name) or "").strip()
            if value == "host":
                found.append(Finding(feature, name, f"uses the host's {what} namespace"))
            elif value.startswith("container:"):
                found.append(Finding("shared_namespace", name, f"joins the {what} namespace of {value[10:]}"))
        _capabilities(spec.cap_add, found)
        for i, device in enumerate(spec.devices or []):
            found.append(Finding("device", f"devices[{i}]", f"maps the host device {str(device).split(':', 1)[0]}"))
        for i, option in enumerate(spec.security_opt or []):
            if option.strip().lower() in UNCONFINED:
                found.append(Finding("security_opt", f"security_opt[{i}]", f"switches confinement off ({option})"))
        _mounts(spec.mounts, allowed_paths, found)
    elif isinstance(spec, ServiceSpec):
        for i, network in enumerate(spec.networks or []):
            if network == "host":
                found.append(Finding("host_network", f"networks[{i}]", "uses the host's network namespace"))
        _capabilities(spec.cap_add, found)
        _mounts(spec.mounts, allowed_paths, found)
    else:
        raise TypeError(f"expected a ContainerSpec or ServiceSpec, got {type(spec).__name__}")
    return found
