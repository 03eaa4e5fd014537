"""The container level: Docker engines, their inventory and events, containers, Swarm services and
stacks, through the Docker SDK. Django-free.

- `engine`: EngineSpec, connect (unix, ssh:// pinned, tcp:// TLS), probe, check; EngineError
- `inventory`: one list call per kind, snapshot()
- `events`: EventWatcher (reconnects, resyncs, heartbeat), map_event
- `containers`: lifecycle, logs, stats, exec, run from a ContainerSpec
- `specs` + `validate`: ContainerSpec, ServiceSpec and their field errors (SpecError)
- `services` + `convergence`: create, scale, update, rollback, remove; wait_converged
- `compose` + `stacks`: Compose file -> ServiceSpecs (no I/O); diff, deploy, remove
- `checks`: publish mode and endpoints, load-balancing check, image update check
- `safety`: privileged features of a spec (pure)

Every call takes a client from connect() (a docker.DockerClient works too, with less friendly
errors). Engine refusals raise BackendError subclasses in the engine's words; bad input raises
SpecError with {field: [messages]} before anything is sent.
"""
from .checks import (
    BalanceReport,
    Endpoint,
    ImageUpdate,
    ServiceEndpoints,
    check_balance,
    container_image_update,
    endpoints,
    publish_mode,
    service_image_update,
)
from .compose import Stack
from .compose import load as load_compose
from .containers import ContainerError, StatsSample, exec_run, logs, run, stats
from .convergence import ConvergeResult, TaskChange, UpdateChange, wait_converged
from .engine import (
    EngineClient,
    EngineError,
    EngineInfo,
    EngineSpec,
    EngineStatus,
    check,
    connect,
    explain,
    is_engine_failure,
    probe,
)
from .events import Event, EventWatcher, map_event
from .inventory import Snapshot, snapshot
from .safety import Finding, path_allowed, privileged_features
from .services import ServiceChange, ServiceError, ServiceNotFound
from .specs import (
    ContainerPort,
    ContainerSpec,
    HealthCheck,
    Mount,
    PortSpec,
    Resources,
    RestartPolicy,
    ServiceSpec,
    UpdatePolicy,
    check_container,
    check_service,
)
from .stacks import FieldChange, StackDiff, StackError
from .validate import SpecError

__all__ = [
    "BalanceReport", "ContainerError", "ContainerPort", "ContainerSpec", "ConvergeResult", "Endpoint", "EngineClient",
    "EngineError", "EngineInfo", "EngineSpec", "EngineStatus", "Event", "EventWatcher", "FieldChange", "Finding",
    "HealthCheck", "ImageUpdate", "Mount", "PortSpec", "Resources", "RestartPolicy", "ServiceChange",
    "ServiceEndpoints", "ServiceError", "ServiceNotFound", "ServiceSpec", "Snapshot", "SpecError", "Stack",
    "StackDiff", "StackError", "StatsSample", "TaskChange", "UpdateChange", "UpdatePolicy", "check", "check_balance",
    "check_container", "check_service", "connect", "container_image_update", "endpoints", "exec_run", "explain",
    "is_engine_failure",
    "load_compose", "logs", "map_event", "path_allowed", "privileged_features", "probe", "publish_mode", "run",
    "service_image_update", "snapshot", "stats", "wait_converged",
]
