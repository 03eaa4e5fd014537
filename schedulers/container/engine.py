"""Engines: how to reach a Docker engine, and what it says about itself, in plain words.

    spec = EngineSpec("local", "unix:///var/run/docker.sock")
    client = connect(spec, timeout=10)     # EngineClient (a docker.DockerClient); EngineError if not
    info = probe(client)                   # EngineInfo: version, API version, OS, Swarm role, health
    status = check(spec)                   # never raises: EngineStatus(state, message, info)

URLs: unix:///path/to/docker.sock, ssh://user@host[:port] (paramiko, pinned host key, key from
memory; the remote user runs `docker system dial-stdio`), tcp://host:port with TLS (client
certificate, key and CA as PEM text). Plain tcp:// without TLS gives root on the engine's host
to anyone on the network, so it is refused unless `allow_plain_tcp` is set.

The API version is negotiated: the engine's, capped at what the SDK knows; an engine older
than the SDK's minimum (docker.constants.MINIMUM_DOCKER_API_VERSION) is refused with
reason API_TOO_OLD.
"""
import ssl
import urllib.parse
from dataclasses import dataclass, field

import docker
import paramiko
import requests
from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
from docker.utils import version_lt

from ..base import BackendError
from ..hostlib.connect import HostKeyMismatch, SSHTarget, _connect_error, parse_public_key
from ..sshkeys import BadKeyError, fingerprint, load_private_key
from .transport import PinnedSSHAdapter, TLSMaterial

# EngineError.reason values, and EngineStatus.state for each.
CONFIG, UNREACHABLE, REFUSED, TIMEOUT, TLS, SSH, HOST_KEY, AUTH, API_TOO_OLD, ERROR = (
    "config", "unreachable", "refused", "timeout", "tls", "ssh", "host_key", "auth", "api_too_old", "error")
STATES = {CONFIG: "misconfigured", UNREACHABLE: "down", REFUSED: "down", TIMEOUT: "down", TLS: "refused",
          SSH: "down", HOST_KEY: "refused", AUTH: "refused", API_TOO_OLD: "unsupported", ERROR: "error"}


@dataclass(frozen=True)
class EngineSpec:
    """One engine as the portal reaches it. Secrets stay out of repr() and so out of logs."""

    name: str
    url: str
    tls_ca: str = field(default="", repr=False)  # PEM; empty: the system's CAs
    tls_cert: str = field(default="", repr=False)  # PEM client certificate
    tls_key: str = field(default="", repr=False)  # PEM client key (unencrypted)
    tls_verify: bool = True  # check the engine's certificate and name
    ssh_private_key: str = field(default="", repr=False)  # OpenSSH/PEM text
    ssh_passphrase: str = field(default="", repr=False)
    ssh_host_key: str = ""  # pinned "ssh-ed25519 AAAA…" of the engine's host; required for ssh://
    allow_plain_tcp: bool = False

    @property
    def scheme(self):
        return urllib.parse.urlsplit(self.url).scheme

    @property
    def uses_tls(self):
        return self.scheme == "tcp" and bool(self.tls_ca or self.tls_cert or not self.allow_plain_tcp)


class EngineError(BackendError):
    """The engine cannot be used; `reason` is one of the module's reason constants."""

    def __init__(self, engine: str, reason: str, message: str):
        super().__init__(message)
        self.engine, self.reason = engine, reason

    @property
    def state(self):
        return STATES.get(self.reason, "error")

    def __reduce__(self):
        return type(self), (self.engine, self.reason, str(self))


class EngineClient(docker.DockerClient):
    """A DockerClient that knows its EngineSpec and owns its TLS files."""

    def __init__(self, spec: EngineSpec, *, tls_material: TLSMaterial | None = None, **kwargs):
        super().__init__(**kwargs)
        # requests would let REQUESTS_CA_BUNDLE replace the engine's CA and *_PROXY route engine
        # traffic through a proxy: the spec alone says how to reach the engine.
        self.api.trust_env = False
        self.spec = spec
        self.tls_material = tls_material
        self.server_version = {}  # GET /version, read while connecting

    def close(self):
        try:
            super().close()
        finally:
            if self.tls_material is not None:
                self.tls_material.remove()

    def __repr__(self):
        return f"<EngineClient {self.spec.name} {self.spec.scheme} api {self.api.api_version}>"


@dataclass
class EngineInfo:
    """What probe() learned about an engine."""

    name: str
    version: str
    api_version: str  # the engine's own
    negotiated_api_version: str  # what this client speaks with it
    min_api_version: str
    os: str
    os_type: str
    arch: str
    kernel: str
    hostname: str
    cpus: int
    memory: int
    swarm_state: str  # inactive, pending, active, error, locked
    swarm_role: str  # manager, worker, none
    node_id: str
    node_address: str
    containers: dict  # {"total", "running", "paused", "stopped"}
    images: int
    health: str  # healthy, degraded
    problems: list = field(default_factory=list)


@dataclass
class EngineStatus:
    """check(): the engine's state in one word, a sentence, and the probe when it answered."""

    state: str  # up, degraded, down, refused, unsupported, misconfigured, error
    message: str
    info: EngineInfo | None = None
    reason: str = ""


def _fail(spec, reason, message):
    return EngineError(spec.name, reason, f"engine {spec.name}: {message}")


def _parse(spec):
    """Check the spec's URL and credentials; return (scheme, parts)."""
    if not spec.name or not isinstance(spec.name, str):
        raise EngineError("?", CONFIG, "an engine needs a name")
    parts = urllib.parse.urlsplit(spec.url or "")
    scheme = parts.scheme
    if scheme == "unix":
        if parts.netloc or not parts.path.startswith("/"):
            raise _fail(spec, CONFIG, f"{spec.url!r} is not unix:///absolute/path")
    elif scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port or parts.path not in ("", "/") or parts.username:
            raise _fail(spec, CONFIG, f"{spec.url!r} is not tcp://host:port")
        if spec.uses_tls and not spec.tls_verify and not spec.tls_cert:
            raise _fail(spec, CONFIG, "TLS without verification and without a client certificate protects nothing")
    elif scheme == "ssh":
        try:
            port = parts.port
        except ValueError:
            raise _fail(spec, CONFIG, f"{spec.url!r} has an invalid port")
        if not parts.hostname or not parts.username or parts.path not in ("", "/") or parts.password:
            raise _fail(spec, CONFIG, f"{spec.url!r} is not ssh://user@host[:port]")
        if not spec.ssh_host_key:
            raise _fail(spec, CONFIG, "an ssh:// engine needs the pinned host key of its host")
        if not spec.ssh_private_key:
            raise _fail(spec, CONFIG, "an ssh:// engine needs the private key of its login")
    else:
        raise _fail(spec, CONFIG, f"{spec.url!r}: the URL must start with unix://, ssh:// or tcp://")
    if scheme != "tcp" and (spec.tls_ca or spec.tls_cert or spec.tls_key):
        raise _fail(spec, CONFIG, "TLS certificates apply to tcp:// engines only")
    return scheme, parts


# Connections kept per engine client (unix and tcp; docker-py keeps 10): a job sampling a
# container's stats waits about 2 s on each, so its threads hold many at once.
MAX_POOL_SIZE = 256


def connect(spec: EngineSpec, timeout: float = 10.0) -> EngineClient:
    """Open a client to the engine and negotiate the API version; EngineError in plain words if not."""
    scheme, parts = _parse(spec)
    common = {"version": MINIMUM_DOCKER_API_VERSION, "timeout": timeout}  # no request until _negotiate
    if scheme != "ssh":
        common["max_pool_size"] = MAX_POOL_SIZE
    material = None
    try:
        if scheme == "unix":
            client = EngineClient(spec, base_url=spec.url, **common)
        elif scheme == "tcp":
            tls = False
            if spec.uses_tls:
                try:
                    material = TLSMaterial(ca=spec.tls_ca, cert=spec.tls_cert, key=spec.tls_key)
                except ValueError as exc:
                    raise _fail(spec, CONFIG, str(exc))
                cert = (material.cert, material.key) if material.cert else None
                verify = (material.ca or True) if spec.tls_verify else False
                tls = docker.tls.TLSConfig(client_cert=cert, ca_cert=material.ca, verify=verify)
            client = EngineClient(spec, base_url=spec.url, tls=tls, tls_material=material, **common)
        else:
            client = _connect_ssh(spec, parts, timeout, common)
    except BaseException:
        if material is not None:
            material.remove()
        raise
    try:
        _negotiate(client)
    except BaseException:
        client.close()
        raise
    return client


def _connect_ssh(spec, parts, timeout, common):
    try:
        pkey = load_private_key(spec.ssh_private_key, spec.ssh_passphrase or None)
    except BadKeyError as exc:
        raise _fail(spec, CONFIG, f"the SSH key cannot be used: {exc}")
    try:
        host_key = parse_public_key(spec.ssh_host_key)
    except ValueError as exc:
        raise _fail(spec, CONFIG, str(exc))
    target = SSHTarget(name=spec.name, address=parts.hostname, port=parts.port or 22, username=parts.username,
                       pinned_host_key=spec.ssh_host_key, connect_timeout=timeout)
    # use_ssh_client=True makes docker-py build a shell-out adapter that does nothing until used;
    # it is replaced at once by the pinned paramiko adapter.
    client = EngineClient(spec, base_url=spec.url, use_ssh_client=True, **common)
    try:
        adapter = PinnedSSHAdapter(spec.url, target=target, pkey=pkey, host_key=host_key, timeout=timeout,
                                   pool_connections=docker.constants.DEFAULT_NUM_POOLS_SSH)
    except HostKeyMismatch as exc:
        client.close()
        raise _fail(spec, HOST_KEY, str(exc))
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise _fail(spec, HOST_KEY, str(HostKeyMismatch(target, exc.expected_key, exc.key)))
    except Exception as exc:
        client.close()
        error = _connect_error(target, exc, fingerprint(pkey), timeout)
        reason = AUTH if isinstance(exc, paramiko.AuthenticationException) else SSH
        raise _fail(spec, reason, str(error or exc)) from None
    client.api._custom_adapter.close()
    client.api.mount("http+docker://ssh", adapter)
    client.api._custom_adapter = adapter
    return client


def _negotiate(client):
    """Ask the engine its version; speak min(its API, the SDK's); refuse one older than the SDK's minimum."""
    spec = client.spec
    try:
        server = client.api.version(api_version=False)
    except Exception as exc:
        raise explain(spec, exc) from None
    api = str(server.get("ApiVersion") or "")
    if not api:
        raise _fail(spec, ERROR, "the engine's /version answer has no ApiVersion: is this a Docker engine?")
    if version_lt(api, MINIMUM_DOCKER_API_VERSION):
        raise _fail(spec, API_TOO_OLD, f"the engine speaks Docker API {api} (Docker {server.get('Version', '?')}); "
                                       f"the portal's Docker SDK needs API {MINIMUM_DOCKER_API_VERSION} or newer: "
                                       f"upgrade the engine")
    client.api._version = DEFAULT_DOCKER_API_VERSION if version_lt(DEFAULT_DOCKER_API_VERSION, api) else api
    client.server_version = server


def _causes(exc):
    """The exception and everything it wraps (requests/urllib3 nest the socket error deeply)."""
    seen, todo = [], [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        todo += [getattr(current, "reason", None), current.__cause__, current.__context__]
        todo = [item for item in todo if isinstance(item, BaseException)]
        todo += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
    return seen


def explain(spec: EngineSpec, exc: BaseException) -> EngineError:
    """Turn what the SDK, requests, ssl or paramiko raised into an EngineError in plain words."""
    if isinstance(exc, EngineError):
        return exc
    where = spec.url
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _fail(spec, TLS, f"the engine's TLS certificate is not trusted: {cause.verify_message}")
        if isinstance(cause, ssl.SSLError):
            return _fail(spec, TLS, f"TLS handshake with {where} failed ({cause.reason or cause}): does the "
                                    f"engine accept this client certificate?")
    for cause in causes:
        if isinstance(cause, FileNotFoundError):
            return _fail(spec, UNREACHABLE, f"no Docker socket at {urllib.parse.urlsplit(where).path} "
                                            f"(is the engine running?)")
        if isinstance(cause, ConnectionRefusedError):
            return _fail(spec, REFUSED, f"connection refused at {where}: nothing listens there "
                                        f"(engine stopped?)")
        if isinstance(cause, PermissionError):
            return _fail(spec, REFUSED, f"permission denied opening {where}")
        if isinstance(cause, TimeoutError | requests.exceptions.Timeout):
            return _fail(spec, TIMEOUT, f"{where} did not answer in time")
        if isinstance(cause, ConnectionResetError | BrokenPipeError):
            return _fail(spec, UNREACHABLE, f"{where} closed the connection (engine restarting, or not a "
                                            f"Docker engine there?)")
        if isinstance(cause, paramiko.SSHException):
            return _fail(spec, SSH, f"SSH to {where} failed: {cause}")
    if isinstance(exc, docker.errors.APIError):
        return _fail(spec, ERROR, f"the engine refused: {exc.explanation or exc}")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return _fail(spec, UNREACHABLE, f"cannot reach {where}: {causes[-1]}")
    if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException | OSError):
        return _fail(spec, ERROR, str(exc))
    return _fail(spec, ERROR, f"{type(exc).__name__}: {exc}")


def is_engine_failure(exc: BaseException) -> bool:
    """True when exc says the engine (or the way to it) failed, rather than a bug in the caller."""
    return isinstance(exc, BackendError | docker.errors.DockerException | requests.exceptions.RequestException
                      | OSError | paramiko.SSHException | ssl.SSLError)


def probe(client: EngineClient) -> EngineInfo:
    """Version, API version, OS, Swarm role and node id, and health of a connected engine."""
    spec = getattr(client, "spec", None) or EngineSpec("engine", client.api.base_url)
    try:
        server = client.api.version(api_version=False)
        info = client.api.info()
    except Exception as exc:
        raise explain(spec, exc) from None
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    problems = []
    if state == "active":
        role = "manager" if swarm.get("ControlAvailable") else "worker"
    else:
        role = "none"
        if state in ("error", "locked", "pending"):
            problems.append(f"swarm is {state}")
    if swarm.get("Error"):
        problems.append(f"swarm: {swarm['Error']}")
    return EngineInfo(
        name=spec.name, version=server.get("Version", ""), api_version=server.get("ApiVersion", ""),
        negotiated_api_version=client.api.api_version, min_api_version=server.get("MinAPIVersion", ""),
        os=info.get("OperatingSystem", ""), os_type=info.get("OSType", ""), arch=info.get("Architecture", ""),
        kernel=info.get("KernelVersion", ""), hostname=info.get("Name", ""), cpus=info.get("NCPU", 0),
        memory=info.get("MemTotal", 0), swarm_state=state, swarm_role=role, node_id=swarm.get("NodeID", ""),
        node_address=swarm.get("NodeAddr", ""),
        containers={"total": info.get("Containers", 0), "running": info.get("ContainersRunning", 0),
                    "paused": info.get("ContainersPaused", 0), "stopped": info.get("ContainersStopped", 0)},
        images=info.get("Images", 0), health="degraded" if problems else "healthy", problems=problems,
    )


def check(spec: EngineSpec, timeout: float = 10.0) -> EngineStatus:
    """Connect, probe and close; report the engine's state without raising."""
    try:
        client = connect(spec, timeout)
    except EngineError as exc:
        return EngineStatus(exc.state, str(exc), reason=exc.reason)
    try:
        info = probe(client)
    except EngineError as exc:
        return EngineStatus(exc.state, str(exc), reason=exc.reason)
    finally:
        client.close()
    if info.problems:
        return EngineStatus("degraded", f"engine {spec.name}: " + "; ".join(info.problems), info)
    return EngineStatus("up", f"engine {spec.name}: Docker {info.version} (API {info.api_version}), "
                              f"swarm {info.swarm_role}", info)
