"""The shared interface of the process level.

A program manager (supervisord, systemd, PM2) never opens its own connection: it is given a
`Shell`, which runs an argv list on the host (the portal's own machine through a subprocess, a
fleet host through the job's SSH pool) and returns what it printed. Which Shell a host gets is
chosen by the caller from the host's transport, so every manager works locally and over SSH alike.

Nothing here builds shell text from caller input: a Shell takes an argv list and quotes it;
managers validate program names and configuration values before anything is sent.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

from ..base import BackendError, CancelToken


class ProcessError(BackendError):
    """An action on a program or process failed; the message is plain words for the operator."""


class ManagerUnavailable(ProcessError):
    """The host has no such manager, or it is down; `reason` says which."""


@dataclass
class ShellResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self):
        return self.exit_code == 0

    def text(self):
        return self.stdout.decode("utf-8", "replace")


class Shell(abc.ABC):
    """Runs argv on one host."""

    name: str = ""  # the host's name, for messages

    @abc.abstractmethod
    def run(self, argv: list[str], *, stdin: bytes | None = None, timeout: float = 60.0,
            cancel: CancelToken | None = None, env: dict | None = None, sweep: bool = True) -> ShellResult:
        """Run argv (no shell) and collect its output; raise BackendError when the host is unreachable.

        sweep=False: argv starts nothing that could outlive it, so what it left running need not be
        looked for once it has exited (over SSH that look scans every process of the host).
        """

    @abc.abstractmethod
    def stream(self, argv: list[str], *, on_line, cancel: CancelToken | None = None,
               timeout: float | None = None) -> int:
        """Run argv, calling on_line(stream, text) per line until it exits or is canceled; return the exit code."""


@dataclass
class ManagerInfo:
    name: str  # "supervisord" | "systemd" | "pm2"
    available: bool
    version: str = ""
    reason: str = ""  # why it is not available, in plain words
    supports: frozenset = frozenset()  # actions this manager offers on this host (see ACTIONS)


# Every action a program manager may offer; a manager lists those it supports on a host.
ACTIONS = frozenset({
    "start", "stop", "restart", "reload", "signal", "pause", "resume", "scale",
    "apply", "remove", "enable", "disable", "freeze", "thaw", "logs",
})


@dataclass
class ProgramSpec:
    """A managed program as the portal wants it; each manager maps it onto its own configuration."""

    name: str
    command: list[str]
    directory: str = ""
    environment: dict = field(default_factory=dict)
    user: str = ""
    autostart: bool = True
    autorestart: str = "unexpected"  # "true" | "false" | "unexpected" (supervisord's words)
    startsecs: int = 1
    startretries: int = 3
    stopsignal: str = "TERM"
    stopwaitsecs: int = 10
    numprocs: int = 1
    # Resource limits; None is no limit. memory_max in bytes, cpu_quota in percent of one CPU.
    memory_max: int | None = None
    cpu_quota: int | None = None
    tasks_max: int | None = None
    nofile: int | None = None


@dataclass
class ProgramStatus:
    """One program (or one process of a program with numprocs > 1) as its manager reports it."""

    manager: str
    name: str
    group: str = ""
    state: str = ""  # normalised: running, stopped, starting, backoff, fatal, exited, paused, unknown
    raw_state: str = ""  # the manager's own word
    pids: list = field(default_factory=list)
    restarts: int | None = None
    exit_code: int | None = None
    started_at: float | None = None  # unix seconds
    stopped_at: float | None = None
    description: str = ""
    limits: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


class ProgramManager(abc.ABC):
    """One process manager on one host, reached through a Shell."""

    name: str = ""

    def __init__(self, shell: Shell):
        self.shell = shell

    @abc.abstractmethod
    def detect(self) -> ManagerInfo:
        """Whether the host runs this manager, its version and the actions it supports there."""

    @abc.abstractmethod
    def programs(self) -> list[ProgramStatus]:
        """Every program the manager knows on this host."""

    @abc.abstractmethod
    def act(self, program: str, action: str, **options) -> ProgramStatus:
        """Perform action (one of ACTIONS) on a program and return its status afterwards."""

    @abc.abstractmethod
    def apply(self, spec: ProgramSpec) -> bool:
        """Create or update the program's configuration; apply it only when it changed. True if changed."""

    @abc.abstractmethod
    def remove(self, program: str) -> bool:
        """Stop the program and remove its configuration. True if it existed."""

    @abc.abstractmethod
    def logs(self, program: str, *, stream: str = "stdout", lines: int = 200) -> list[str]:
        """The last lines the program wrote."""

    @abc.abstractmethod
    def follow(self, program: str, *, on_line, cancel: CancelToken, stream: str = "stdout") -> None:
        """Call on_line(stream, text) for each new line until cancel is set."""
