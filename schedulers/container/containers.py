"""Container operations: lifecycle, logs (tail and follow), one stats sample, non-interactive exec,
and creating a container from a checked ContainerSpec.

Engine refusals raise ContainerError with the engine's words. Streaming calls take an
`on_line(stream, text)` callback and a CancelToken; cancel closes the stream (logs) or ends
the process (exec) and is confirmed before the call returns.
"""
import secrets
import signal as signals
import struct
import threading
import time
from dataclasses import dataclass

import docker

from ..base import BackendError, CancelToken, CommandResult, split_lines
from .engine import explain
from .inventory import ContainerInfo
from .inventory import container as inspect_info
from .services import health_to_engine
from .specs import ContainerSpec, SpecError, check_container
from .transport import close_stream
from .validate import Errors, size

KILL_GRACE = 3.0


class ContainerError(BackendError):
    """The engine refused a container operation, or the container is not there."""


def _call(client, what, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except docker.errors.NotFound as exc:
        raise ContainerError(f"{what}: not found ({exc.explanation or exc})")
    except docker.errors.APIError as exc:
        raise ContainerError(f"{what}: the engine refused: {exc.explanation or exc}")
    except Exception as exc:
        spec = getattr(client, "spec", None)
        if spec is None:
            raise
        raise explain(spec, exc) from None


# Lifecycle ---------------------------------------------------------------------------------

def _after(client, container, what):
    return _call(client, f"{what} {container}", inspect_info, client, container)


def start(client, container) -> ContainerInfo:
    _call(client, f"start {container}", client.api.start, container)
    return _after(client, container, "start")


def stop(client, container, timeout: int = 10) -> ContainerInfo:
    """Stop with SIGTERM, then SIGKILL after `timeout` seconds."""
    _call(client, f"stop {container}", client.api.stop, container, timeout=int(timeout))
    return _after(client, container, "stop")


def restart(client, container, timeout: int = 10) -> ContainerInfo:
    _call(client, f"restart {container}", client.api.restart, container, timeout=int(timeout))
    return _after(client, container, "restart")


def pause(client, container) -> ContainerInfo:
    _call(client, f"pause {container}", client.api.pause, container)
    return _after(client, container, "pause")


def unpause(client, container) -> ContainerInfo:
    _call(client, f"unpause {container}", client.api.unpause, container)
    return _after(client, container, "unpause")


def signal_name(value) -> str:
    """A signal as the engine takes it ("SIGTERM"); SpecError for anything that is not one."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return signals.Signals(value).name
        name = str(value).upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        return signals.Signals[name].name
    except (KeyError, ValueError):
        raise SpecError({"signal": [f"{value!r} is not a signal name or number"]})


def kill(client, container, signal="SIGKILL") -> ContainerInfo:
    name = signal_name(signal)
    _call(client, f"kill {container}", client.api.kill, container, signal=name)
    return _after(client, container, "kill")


def remove(client, container, *, force=False, volumes=False) -> None:
    """Remove the container (force: even running); volumes: its anonymous volumes too."""
    _call(client, f"remove {container}", client.api.remove_container, container, force=force, v=volumes)


SERVICE_LABEL = "com.docker.swarm.service.id"


def _create_args(attrs):
    """create_container arguments that give a new container the old one's configuration (its image
    reference as the engine tags it now, command, environment, labels, ports, health check, host
    configuration and the first network with its aliases). Anonymous volumes are new ones."""
    config, host = attrs.get("Config") or {}, dict(attrs.get("HostConfig") or {})
    short = attrs["Id"][:12]
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    mode = host.get("NetworkMode") or "default"
    networking = None
    if mode in networks or (mode == "default" and "bridge" in networks):
        name = mode if mode in networks else "bridge"
        aliases = [a for a in (networks[name].get("Aliases") or []) if a != short]
        networking = {"EndpointsConfig": {name: {"Aliases": aliases} if aliases else {}}}
    hostname = config.get("Hostname")
    return {"image": config.get("Image"), "command": config.get("Cmd"), "entrypoint": config.get("Entrypoint"),
            "environment": config.get("Env"), "labels": config.get("Labels") or None,
            "ports": [tuple(p.split("/")) for p in (config.get("ExposedPorts") or {})] or None,
            "working_dir": config.get("WorkingDir") or None, "user": config.get("User") or None,
            "healthcheck": config.get("Healthcheck"), "stop_signal": config.get("StopSignal"),
            "tty": bool(config.get("Tty")), "stdin_open": bool(config.get("OpenStdin")),
            "volumes": list(config.get("Volumes") or {}) or None,
            "hostname": hostname if hostname and hostname != short else None,
            "host_config": host, "networking_config": networking}, networks


def recreate(client, container, timeout: int = 10) -> ContainerInfo:
    """Replace the container by a new one with its name and configuration (a fresh filesystem, the
    image its tag names now). The old one is stopped and renamed aside until the new one runs, then
    removed; if the new one cannot be created or started, the old one gets its name back (stopped).
    A Swarm task's container is refused: its service replaces tasks."""
    api = client.api
    attrs = _call(client, f"inspect {container}", api.inspect_container, container)
    name = (attrs.get("Name") or "").lstrip("/")
    if ((attrs.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL):
        raise ContainerError(f"recreate {name}: it is a Swarm service's task; update the service instead")
    args, networks = _create_args(attrs)
    first = next(iter((args["networking_config"] or {}).get("EndpointsConfig", {})), None)
    _call(client, f"stop {name}", api.stop, attrs["Id"], timeout=int(timeout))
    aside = f"{name}-old-{secrets.token_hex(3)}"
    _call(client, f"rename {name}", api.rename, attrs["Id"], aside)
    created = None
    try:
        created = _call(client, f"create {name}", api.create_container, name=name, **args)
        for network, endpoint in networks.items():  # the other networks, with their aliases
            if network != first and network not in ("host", "none"):
                aliases = [a for a in (endpoint.get("Aliases") or []) if a != attrs["Id"][:12]]
                _call(client, f"connect {name} to {network}", api.connect_container_to_network, created["Id"],
                      network, aliases=aliases or None)
        _call(client, f"start {name}", api.start, created["Id"])
    except BaseException:
        if created is not None:
            try:
                api.remove_container(created["Id"], force=True, v=True)
            except docker.errors.APIError:
                pass
        api.rename(attrs["Id"], name)
        raise
    _call(client, f"remove the old {name}", api.remove_container, attrs["Id"], force=True)
    return inspect_info(client, created["Id"])


# Logs ----------------------------------------------------------------------------------------

def _frames(raw, tty):
    """(stream, bytes) from a logs response: 8-byte headers unless the container has a TTY."""
    if tty:
        while chunk := raw.read1(65536) if hasattr(raw, "read1") else raw.read(4096):
            yield 1, chunk
        return
    while True:
        header = raw.read(8)
        if len(header) < 8:
            return
        stream, length = struct.unpack(">BxxxL", header)
        data = b""
        while len(data) < length:
            more = raw.read(length - len(data))
            if not more:
                return
            data += more
        yield stream, data


def logs(client, container, *, tail: int | None = 100, since=None, follow=False, timestamps=False,
         on_line=None, cancel: CancelToken | None = None) -> list:
    """The container's log lines as (stream, text), stream "stdout" or "stderr".

    follow: keep reading until the container stops or cancel is set; with on_line, lines go
    there as they arrive and the return value is empty.
    """
    attrs = _call(client, f"logs of {container}", client.api.inspect_container, container)
    tty = bool((attrs.get("Config") or {}).get("Tty"))
    params = {"stdout": 1, "stderr": 1, "follow": int(bool(follow)), "timestamps": int(bool(timestamps)),
              "tail": "all" if tail is None else int(tail)}
    if since is not None:
        params["since"] = int(since.timestamp()) if hasattr(since, "timestamp") else since
    api = client.api
    response = _call(client, f"logs of {container}", api._get, api._url("/containers/{0}/logs", attrs["Id"]),
                     params=params, stream=True, timeout=None)
    _call(client, f"logs of {container}", api._raise_for_status, response)
    collected = []
    emit = on_line or (lambda stream, text: collected.append((stream, text)))
    done = threading.Event()
    if cancel is not None:
        def watch():
            while not done.is_set():
                if cancel.wait(0.2):
                    close_stream(response)
                    return
        threading.Thread(target=watch, daemon=True).start()
    buffers = {1: b"", 2: b""}
    try:
        for stream, data in _frames(response.raw, tty):
            key = 2 if stream == 2 else 1
            lines, buffers[key] = split_lines(buffers[key] + data)
            for line in lines:
                emit("stderr" if key == 2 else "stdout", line)
    except (OSError, ValueError, AttributeError, docker.errors.DockerException):
        if cancel is None or not cancel.is_set():
            raise ContainerError(f"logs of {container}: the stream broke off") from None
    except Exception as exc:  # urllib3 ProtocolError when the stream is closed under us
        if cancel is None or not cancel.is_set():
            raise ContainerError(f"logs of {container}: the stream broke off ({exc})") from None
    finally:
        done.set()
        response.close()
    for key, rest in buffers.items():
        for line in split_lines(rest, final=True)[0]:
            emit("stderr" if key == 2 else "stdout", line)
    return collected


# Stats ---------------------------------------------------------------------------------------

@dataclass
class StatsSample:
    cpu_percent: float  # of one CPU: 200.0 is two CPUs busy (as `docker stats`)
    online_cpus: int
    memory_usage: int  # bytes, page cache excluded (as `docker stats`)
    memory_limit: int
    memory_percent: float
    net_rx: int  # bytes since the container started, all interfaces
    net_tx: int
    block_read: int
    block_write: int
    pids: int
    read_at: str
    running: bool


def compute_stats(raw: dict) -> StatsSample:
    """Turn one stats answer (with precpu_stats, as stream=False gives) into figures."""
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    usage, pre_usage = cpu.get("cpu_usage") or {}, pre.get("cpu_usage") or {}
    online = cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1
    cpu_delta = (usage.get("total_usage") or 0) - (pre_usage.get("total_usage") or 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    percent = cpu_delta / system_delta * online * 100.0 if cpu_delta > 0 and system_delta > 0 else 0.0
    memory = raw.get("memory_stats") or {}
    details = memory.get("stats") or {}
    used = memory.get("usage") or 0
    # cgroup v1 reports total_inactive_file, v2 inactive_file; the CLI subtracts it.
    inactive = details.get("total_inactive_file", details.get("inactive_file", 0)) or 0
    if inactive < used:
        used -= inactive
    limit = memory.get("limit") or 0
    networks = (raw.get("networks") or {}).values()
    blkio = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return StatsSample(
        cpu_percent=round(percent, 2), online_cpus=online, memory_usage=used, memory_limit=limit,
        memory_percent=round(used / limit * 100.0, 2) if limit else 0.0,
        net_rx=sum(n.get("rx_bytes", 0) for n in networks), net_tx=sum(n.get("tx_bytes", 0) for n in networks),
        block_read=sum(e.get("value", 0) for e in blkio if (e.get("op") or "").lower() == "read"),
        block_write=sum(e.get("value", 0) for e in blkio if (e.get("op") or "").lower() == "write"),
        pids=(raw.get("pids_stats") or {}).get("current") or 0, read_at=raw.get("read", ""),
        running=bool(raw.get("read")) and not raw.get("read", "").startswith("0001-"),
    )


def stats(client, container) -> StatsSample:
    """One sample: the engine measures over about a second and returns it with the previous reading."""
    return compute_stats(_call(client, f"stats of {container}", client.api.stats, container, stream=False))


# Exec ----------------------------------------------------------------------------------------

# sh -c WRAPPER opsportal-exec MARKER CMD...: announce the pid on stderr, then become the command.
WRAPPER = 'printf "%s %s\\n" "$1" "$$" >&2; shift; exec "$@"'


def exec_run(client, container, command: list, *, on_line=None, cancel: CancelToken | None = None,
             timeout: float | None = None, env: dict | None = None, user: str = "", workdir: str | None = None,
             killable=True) -> CommandResult:
    """Run a command (an argument vector) in a running container; stream its output; return its exit code.

    killable: start it through the image's `sh`, which reports its pid, so cancel and timeout
    can end it (TERM, then KILL after a grace period) and confirm it ended. Without sh in the
    image, pass killable=False: cancel then only stops reading, and says so.
    """
    if isinstance(command, str) or not command or not all(isinstance(a, str) and "\x00" not in a for a in command):
        raise SpecError({"command": ["must be a non-empty list of strings (an argument vector)"]})
    marker = f"opsportal-exec-{secrets.token_hex(8)}"
    argv = ["sh", "-c", WRAPPER, "opsportal-exec", marker, *command] if killable else list(command)
    api = client.api
    created = _call(client, f"exec in {container}", api.exec_create, container, argv, stdout=True, stderr=True,
                    environment=env or None, user=user, workdir=workdir)
    exec_id = created["Id"]
    sock = _call(client, f"exec in {container}", api.exec_start, exec_id, socket=True)
    emit = on_line or (lambda stream, text: None)
    state = {"pid": None, "ended_by": None, "gone": False}
    finished = threading.Event()

    def watch():
        deadline = time.monotonic() + timeout if timeout else None
        while not finished.is_set():
            if cancel is not None and cancel.is_set():
                state["ended_by"] = "canceled"
            elif deadline is not None and time.monotonic() >= deadline:
                state["ended_by"] = "timed_out"
            if state["ended_by"]:
                _end(client, container, exec_id, state, sock, killable)
                return
            finished.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    buffers = {1: b"", 2: b""}
    try:
        for stream, data in docker.utils.socket.frames_iter(sock, tty=False):
            key = 2 if stream == 2 else 1
            lines, buffers[key] = split_lines(buffers[key] + data)
            for line in lines:
                if key == 2 and state["pid"] is None and line.startswith(marker + " "):
                    state["pid"] = line.split()[1]
                    continue
                emit("stderr" if key == 2 else "stdout", line)
    except (OSError, docker.errors.DockerException):
        pass  # the socket closed: the process ended, or we stopped reading
    finally:
        finished.set()
        for key, rest in buffers.items():
            for line in split_lines(rest, final=True)[0]:
                emit("stderr" if key == 2 else "stdout", line)
        try:
            sock.close()
        except OSError:
            pass
    watcher.join(KILL_GRACE + 15)  # a cancel in progress confirms the end before we report it
    info = _wait_exec(client, exec_id)
    result = CommandResult(exit_code=info.get("ExitCode"))
    if state["ended_by"]:
        setattr(result, state["ended_by"], True)
        if not killable:
            result.error = f"stopped reading; the command may still run in {container} (started with killable=False)"
        elif info.get("Running") or not state["gone"]:
            result.error = f"the command's processes in {container} could not be confirmed ended"
    return result


def _wait_exec(client, exec_id, wait=5.0):
    deadline = time.monotonic() + wait
    while True:
        info = client.api.exec_inspect(exec_id)
        if not info.get("Running") or time.monotonic() >= deadline:
            return info
        time.sleep(0.05)


# Signal the exec's process group (an exec'd process leads its own session and group), or the
# process alone when it is not a group leader; `kill -0` then tells whether any member is left.
# No `--` before the negative pid: busybox's kill does not take it.
SIGNAL_GROUP = 'kill -s "$1" "-$2" 2>/dev/null || kill -s "$1" "$2" 2>/dev/null'
GROUP_ALIVE = 'kill -0 "-$1" 2>/dev/null || kill -0 "$1" 2>/dev/null'


def _in_container(client, container, script, *args):
    """Run a tiny sh script in the container; return its exit code (None if it could not run)."""
    try:
        exec_id = client.api.exec_create(container, ["sh", "-c", script, "opsportal", *args])["Id"]
        client.api.exec_start(exec_id)
        return client.api.exec_inspect(exec_id).get("ExitCode")
    except docker.errors.APIError:
        return None


def _end(client, container, exec_id, state, sock, killable):
    """TERM the exec's process group, KILL it after the grace period, confirm it is gone, stop reading."""
    pid = state["pid"]
    if killable and pid:
        for sig, grace in (("TERM", KILL_GRACE), ("KILL", 2.0)):
            if _in_container(client, container, SIGNAL_GROUP, sig, pid) is None:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and client.api.exec_inspect(exec_id).get("Running"):
                time.sleep(0.05)
            while time.monotonic() < deadline and _in_container(client, container, GROUP_ALIVE, pid) == 0:
                time.sleep(0.1)
            if _in_container(client, container, GROUP_ALIVE, pid) != 0:
                state["gone"] = True
                break
    raw = getattr(sock, "_sock", sock)  # docker-py hands out a SocketIO for unix sockets
    try:
        raw.shutdown(2)
    except (OSError, AttributeError):
        pass


# Create and run ------------------------------------------------------------------------------

def _host_config(client, spec):
    api = client.api
    mounts = []
    for m in spec.mounts:
        mounts.append(docker.types.Mount(m.target, m.source or None, type=m.type, read_only=m.read_only,
                                         driver_config=docker.types.DriverConfig(m.volume_driver or "local",
                                                                                 m.volume_options or None)
                                         if m.type == "volume" and (m.volume_driver or m.volume_options) else None,
                                         labels=m.volume_labels or None))
    restart = None
    if spec.restart != "no":
        restart = {"Name": spec.restart}
        if spec.restart_max_retries is not None:
            restart["MaximumRetryCount"] = spec.restart_max_retries
    bindings = {}
    for p in spec.ports:
        bindings.setdefault(f"{p.container_port}/{p.protocol}", []).append((p.host_ip, p.host_port))
    return api.create_host_config(
        port_bindings=bindings or None, mounts=mounts or None, restart_policy=restart,
        mem_limit=size(spec.memory_limit, Errors(), "memory_limit"),
        nano_cpus=int(spec.cpus * 10**9) if spec.cpus else None, privileged=spec.privileged,
        network_mode=spec.network_mode or spec.network, pid_mode=spec.pid_mode, ipc_mode=spec.ipc_mode,
        uts_mode=spec.uts_mode, userns_mode=spec.userns_mode, cap_add=spec.cap_add or None,
        cap_drop=spec.cap_drop or None, devices=spec.devices or None, security_opt=spec.security_opt or None,
        read_only=spec.read_only or None)


def _healthcheck(health):
    if health is None:
        return None
    data = health_to_engine(health)
    return {{"Test": "test", "Interval": "interval", "Timeout": "timeout", "Retries": "retries",
             "StartPeriod": "start_period"}[k]: val for k, val in data.items()}


def run(client, spec: ContainerSpec, *, start_it=True) -> ContainerInfo:
    """Create (and start) a container from a checked spec; on failure nothing is left behind."""
    spec = check_container(spec)
    api = client.api
    try:
        api.inspect_image(spec.image)
    except docker.errors.ImageNotFound:
        raise SpecError({"image": [f"{spec.image} is not on this engine: pull it first"]})
    except docker.errors.APIError as exc:
        raise ContainerError(f"image {spec.image}: {exc.explanation or exc}")
    networking = None
    if spec.network:
        networking = api.create_networking_config({spec.network: api.create_endpoint_config()})
    created = _call(client, f"create {spec.name or spec.image}", api.create_container, spec.image,
                    command=spec.command, name=spec.name, environment=spec.env or None, labels=spec.labels or None,
                    ports=[(p.container_port, p.protocol) for p in spec.ports] or None,
                    entrypoint=spec.entrypoint, working_dir=spec.workdir, user=spec.user,
                    healthcheck=_healthcheck(spec.healthcheck), host_config=_host_config(client, spec),
                    networking_config=networking)
    if start_it:
        try:
            _call(client, f"start {spec.name or created['Id'][:12]}", api.start, created["Id"])
        except BaseException:
            try:
                api.remove_container(created["Id"], force=True, v=True)
            except docker.errors.APIError:
                pass
            raise
    return inspect_info(client, created["Id"])
