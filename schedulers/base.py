"""The small shared interface of the level backends, and their registry.

Each level (host, container, process) has one Backend, registered here by the module that defines
it (`register(HostBackend())` in schedulers/host.py); the portal finds it by level (`get("host")`).
A backend reaches its targets through one of its `transports` (a host: "local" for the portal's own
machine, "ssh" for the rest; a process level might reach hosts through either too), chosen from
the target it is given (`target.transport`), never by its caller. Per-job resources, such as the
SSH connection pool bounded by the job's parallelism, come from `session(limit)` and are closed by
the caller when the job ends.

A backend runs one action on one target and reports through callbacks: `on_line(stream, text)`
for each line of output as it arrives. Cancellation is cooperative through a CancelToken the
runner sets; backends end the whole remote or local process group and report `canceled` only once
the group is confirmed gone.
"""
import abc
import threading
from dataclasses import dataclass, field


class CancelToken:
    """Set by the runner when the job is canceled or times out; backends poll or wait on it."""

    def __init__(self):
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason="canceled"):
        self.reason = reason
        self._event.set()

    def is_set(self):
        return self._event.is_set()

    def wait(self, timeout=None):
        return self._event.wait(timeout)


@dataclass
class CommandResult:
    """How a command ended on one target."""

    exit_code: int | None = None
    error: str = ""  # plain words: why it failed to run (not the command's own stderr)
    canceled: bool = False
    timed_out: bool = False
    changed: bool | None = None
    data: dict = field(default_factory=dict)  # structured output (facts, diffs, check results)

    @property
    def ok(self):
        return self.exit_code == 0 and not (self.error or self.canceled or self.timed_out)


class BackendError(Exception):
    """A target could not be acted on (unreachable, refused, bad credentials): one target fails."""


def split_lines(buffer: bytes, final=False):
    """Split complete lines off a byte buffer; returns (lines, rest). Undecodable bytes are replaced."""
    *lines, rest = buffer.split(b"\n")
    if final and rest:
        lines.append(rest)
        rest = b""
    return [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines], rest


class Backend(abc.ABC):
    """One level's backend. Subclasses set `level` and `transports` and add the operations of
    their level (a host backend runs commands and probes; a container backend scales services)."""

    level: str = ""
    transports: tuple[str, ...] = ()

    def transport_of(self, target):
        """How the target is reached: its `transport`, which must be one this backend knows."""
        transport = getattr(target, "transport", None)
        if transport not in self.transports:
            raise BackendError(f"{self.level} backend cannot reach {getattr(target, 'name', target)!r} over "
                               f"{transport!r} (it knows {', '.join(self.transports)})")
        return transport

    @abc.abstractmethod
    def session(self, limit: int, **options):
        """Per-job resources for up to `limit` targets at once (a connection pool); has close()."""


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    if not backend.level or backend.level in _BACKENDS:
        raise ValueError(f"backend level {backend.level!r} is unnamed or registered twice")
    _BACKENDS[backend.level] = backend
    return backend


def get(level: str) -> Backend:
    """The registered backend of a level (KeyError when the level has none)."""
    return _BACKENDS[level]


def levels() -> list[str]:
    return sorted(_BACKENDS)
