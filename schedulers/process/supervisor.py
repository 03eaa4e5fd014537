"""supervisord behind the ProgramManager interface, over its XML-RPC interface on the host's unix socket.

Every call is one round trip: remote/supervisor_relay.py is sent to the host's python3 through the
Shell, with a batch of operations as JSON on stdin; it connects to supervisord's unix socket (never
a TCP port) and answers with the results. Program configs the portal writes live in supervisord's
include directory (/etc/supervisor/conf.d/NAME.conf on Debian) and carry their ProgramSpec as JSON
on their second line; configs written by others are read, started and stopped but never rewritten.

Restart counts: supervisord keeps none, so they are read from its own log (`readLog`): since the
last "supervisord started" line, every "spawned:" line of a process that follows an "exited:"
line of the same process is a restart (an automatic one, or a start by hand after a crash). The
window is the last `log_bytes` of the log (512 KiB by default); a log rotated since, or a log level
above info, undercounts. Crash loop: the process is in BACKOFF or FATAL, or it restarted
`crash_restarts` times within `crash_window` seconds (host clock).

Limits: supervisord has none of its own. A program with limits runs under remote/limit_exec.py
(RLIMIT_NOFILE, RLIMIT_NPROC set by the kernel; memory by a watchdog that kills the program with
SIGKILL over its RSS limit and says so on its stderr, from where `exit_reason` is read). CPU quotas
are refused (see supervisor_conf.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import cache
from importlib import resources

from ..base import BackendError, CancelToken
from . import supervisor_conf as conf
from .base import ManagerInfo, ManagerUnavailable, ProcessError, ProgramManager, ProgramSpec, ProgramStatus
from .shells import decode_payload, python_argv

STATES = {"RUNNING": "running", "STOPPED": "stopped", "STARTING": "starting", "BACKOFF": "backoff",
          "FATAL": "fatal", "EXITED": "exited", "STOPPING": "stopping", "UNKNOWN": "unknown"}
WORST_FIRST = ("fatal", "backoff", "exited", "stopping", "stopped", "starting", "paused", "unknown", "running")
SIGNALS = ("HUP", "INT", "QUIT", "KILL", "TERM", "USR1", "USR2", "ALRM", "WINCH", "CONT", "STOP")
SUPPORTS = frozenset({"start", "stop", "restart", "signal", "pause", "resume", "scale", "apply", "remove", "logs"})
NOT_OFFERED = {
    "reload": "supervisord cannot reload a program: restart it, or send it a signal such as HUP",
    "enable": "supervisord has no enable: set autostart in the program's configuration",
    "disable": "supervisord has no disable: set autostart in the program's configuration",
    "freeze": "supervisord cannot freeze a program's cgroup: pause sends SIGSTOP to its processes instead",
    "thaw": "supervisord cannot thaw a program's cgroup: resume sends SIGCONT to its processes instead",
}
KNOWN_MAJOR = (3, 4)
MEMORY_KILL = re.compile(r"opsportal-limit: killed pid (\d+): memory RSS (\d+) over the limit of (\d+) bytes")
EXIT_STATUS = re.compile(r"^exit status (\d+)")
# supervisord's fault codes
BAD_NAME, NOT_RUNNING, ALREADY_STARTED, SUCCESS, CANT_REREAD = 10, 70, 60, 80, 92
SPAWN_ERROR, ABNORMAL_TERMINATION, SHUTDOWN_STATE = 50, 40, 6


@cache
def _source(name):
    return resources.files(__package__).joinpath(f"remote/{name}").read_text(encoding="utf-8")


def install_plan() -> dict:
    """How to install supervisord on a Debian or Ubuntu host, as a host.command job the app can launch."""
    command = ("set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
               "apt-get install -y -q supervisor; "
               "if [ -d /run/systemd/system ]; then systemctl enable --now supervisor; "
               "elif ! [ -S /var/run/supervisor.sock ]; then supervisord -c /etc/supervisor/supervisord.conf; fi; "
               "supervisorctl version")
    return {"action": "host.command", "values": {"command": command}, "label": "Install supervisord",
            "description": "apt-get install supervisor, then start it (systemd, or supervisord directly)",
            "mutating": True, "timeout": 900}


class SupervisorManager(ProgramManager):
    name = "supervisord"

    def __init__(self, shell, *, python: str = "python3", log_bytes: int = 512 * 1024,
                 crash_window: float = 300.0, crash_restarts: int = 3, timeout: float = 120.0):
        super().__init__(shell)
        self.python = python
        self.log_bytes = log_bytes
        self.crash_window = crash_window
        self.crash_restarts = crash_restarts
        self.timeout = timeout
        self.env = {}

    # The relay ---------------------------------------------------------------------------------

    def _batch(self, *ops):
        """Run ops on the host; return their results (the first failed one last)."""
        argv = python_argv(_source("supervisor_relay.py"), "batch", python=self.python)
        result = self.shell.run(argv, stdin=json.dumps({"ops": list(ops)}).encode(), timeout=self.timeout)
        if result.exit_code == 127:
            raise ManagerUnavailable(f"{self.python} is not installed on {self.shell.name}; "
                                     "the supervisord manager needs it")
        if not result.ok:
            detail = result.stderr.decode("utf-8", "replace").strip()[-500:] or f"exit {result.exit_code}"
            raise ProcessError(f"talking to supervisord on {self.shell.name} failed: {detail}")
        try:
            document = decode_payload(result.text())
        except (ValueError, OSError, EOFError) as exc:
            raise ProcessError(f"supervisord's answer from {self.shell.name} could not be read: {exc}")
        self.env = document["env"]
        return document["results"]

    def _run(self, *ops, program=""):
        """Run ops; return their values, or raise for the first that failed."""
        results = self._batch(*ops)
        for result in results:
            if "ok" not in result:
                raise self._error(result, program)
        return [result["ok"] for result in results]

    def _error(self, result, program):
        host = self.shell.name
        if "down" in result:
            return ManagerUnavailable(f"{host}: {result['down']}")
        if "error" in result:
            return ProcessError(f"{host}: {result['error']}")
        code, message = result["fault"], result.get("msg", "")
        if code == BAD_NAME:
            return ProcessError(f"supervisord on {host} has no program {program or message!r}")
        if code == NOT_RUNNING:
            return ProcessError(f"{program} is not running on {host}")
        if code == CANT_REREAD:
            return ProcessError(f"supervisord on {host} refused the configuration ({message}); "
                                "nothing was changed")
        if code == SHUTDOWN_STATE:
            return ManagerUnavailable(f"supervisord on {host} is shutting down")
        return ProcessError(f"supervisord on {host}: {message or code}")

    # Facts and state ---------------------------------------------------------------------------

    def detect(self) -> ManagerInfo:
        try:
            results = self._batch(["rpc", "supervisor.getSupervisorVersion"], ["rpc", "supervisor.getState"])
        except ManagerUnavailable as exc:
            return ManagerInfo(self.name, False, reason=str(exc))
        if "ok" not in results[0]:
            return ManagerInfo(self.name, False, reason=str(self._error(results[0], "")))
        version = results[0]["ok"]
        try:
            major = int(version.split(".")[0])
        except ValueError:
            major = None
        if major not in KNOWN_MAJOR:
            return ManagerInfo(self.name, False, version, reason=f"supervisord {version} is not a version the "
                                                                 "portal knows (3.x or 4.x)")
        state = results[1].get("ok", {}).get("statename", "UNKNOWN")
        if state != "RUNNING":
            return ManagerInfo(self.name, False, version, reason=f"supervisord on {self.shell.name} is {state.lower()}")
        return ManagerInfo(self.name, True, version, supports=SUPPORTS)

    def programs(self) -> list[ProgramStatus]:
        status = self._run(["status", self.log_bytes])[0]
        return [self._status(info, status["history"].get(info["name"], {}), status["specs"].get(info["group"]))
                for info in status["infos"]]

    def status(self, program: str) -> ProgramStatus:
        """One program (all its processes, aggregated) or one group:process."""
        conf.program_name(program)
        found = [s for s in self.programs() if s.name == program or (":" not in program and s.group == program)]
        if not found:
            raise ProcessError(f"supervisord on {self.shell.name} has no program {program!r}")
        return found[0] if len(found) == 1 else _aggregate(program, found)

    def _status(self, info, history, spec):
        name = info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"
        raw = info["statename"]
        state = "paused" if raw == "RUNNING" and info.get("pstate") == "T" else STATES.get(raw, "unknown")
        events = history.get("events", [])
        exits = [{"at": at, "pid": pid, "how": detail} for at, kind, pid, detail in events if kind == "exited"]
        tail = [line for line in (info.get("stderr_tail") or "").split("\n") if line.strip()][-20:]
        last = exits[-1] if exits else None
        # The log says how the last exit went (supervisord's exitstatus is 0 again once FATAL).
        exit_code = info.get("exitstatus") if raw == "EXITED" else None
        if last:
            match = EXIT_STATUS.match(last["how"])
            exit_code = int(match.group(1)) if match else None  # None: ended by a signal
        reason = ""
        if last:
            reason = last["how"]
            for line in reversed(tail):
                kill = MEMORY_KILL.search(line)
                if kill and int(kill.group(1)) == last["pid"]:
                    reason = (f"stopped for going over its memory limit (RSS {int(kill.group(2))} bytes, "
                              f"limit {int(kill.group(3))} bytes)")
                    break
        recent = _restarts_since(events, info.get("now", 0) - self.crash_window)
        crash_loop = raw in ("BACKOFF", "FATAL") or recent >= self.crash_restarts
        description = info.get("description", "")
        if reason.startswith("stopped for going over") and state != "running":
            description = f"{reason}; {description}" if description else reason
        return ProgramStatus(
            manager=self.name, name=name, group=info["group"], state=state, raw_state=raw,
            pids=[info["pid"]] if info.get("pid") else [], restarts=history.get("restarts", 0),
            exit_code=exit_code, started_at=info.get("start") or None, stopped_at=info.get("stop") or None,
            description=description, limits=conf.limits_of(conf.spec_from(spec)) if spec else {},
            extra={"crash_loop": crash_loop, "restarts_recent": recent, "last_exits": exits[-5:],
                   "exit_reason": reason, "stderr_tail": tail, "spawnerr": info.get("spawnerr", ""),
                   "managed": spec is not None, "pstate": info.get("pstate", ""),
                   "logfiles": {"stdout": info.get("stdout_logfile", ""), "stderr": info.get("stderr_logfile", "")}},
        )

    # Actions -----------------------------------------------------------------------------------

    def act(self, program: str, action: str, **options) -> ProgramStatus:
        conf.program_name(program)
        if action in NOT_OFFERED:
            raise ProcessError(NOT_OFFERED[action])
        if action not in SUPPORTS or action in ("apply", "remove", "logs"):
            raise ProcessError(f"{action!r} is not an action on a supervisord program")
        target = program if ":" in program else f"{program}:*"
        if action == "start":
            self._start(program, target)
        elif action == "stop":
            self._stop(program, target)
        elif action == "restart":
            self._stop(program, target)
            self._start(program, target)
        elif action == "signal":
            signame = str(options.get("signal", "")).upper().removeprefix("SIG")
            if signame not in SIGNALS:
                raise ProcessError(f"signal must be one of {', '.join(SIGNALS)}")
            answer = self._run(["rpc", "supervisor.signalProcess", target, signame], program=program)[0]
            if answer == []:
                raise ProcessError(f"{program} is not running on {self.shell.name}")
            self._check(answer, program)
        elif action in ("pause", "resume"):
            current = self.status(program)
            names = current.extra.get("processes") or [current.name]
            if current.state not in ("running", "paused"):
                raise ProcessError(f"{program} is {current.state} on {self.shell.name}; only a running program "
                                   f"can be {'paused' if action == 'pause' else 'resumed'}")
            self._run(*[["kill", name, "STOP" if action == "pause" else "CONT"] for name in names], program=program)
        elif action == "scale":
            self._scale(program, options.get("numprocs"))
        return self.status(program)

    def _check(self, value, program):
        """startProcess/stopProcess/signalProcess on group:* answer per process instead of raising."""
        if isinstance(value, list):
            failed = [item for item in value if item.get("status") not in (SUCCESS, ALREADY_STARTED)]
            if failed:
                item = failed[0]
                raise self._failure(f"{item['group']}:{item['name']}", item.get("status"), item.get("description"))

    def _start(self, program, target):
        results = self._batch(["rpc", "supervisor.startProcess", target, True])
        result = results[0]
        if "ok" in result:
            self._check(result["ok"], program)
        elif result.get("fault") != ALREADY_STARTED:
            if result.get("fault") in (SPAWN_ERROR, ABNORMAL_TERMINATION):
                raise self._failure(program, result["fault"], result.get("msg", ""))
            raise self._error(result, program)

    def _failure(self, name, code, message):
        """A start that failed, with the program's own stderr."""
        try:
            info, tail = self._run(["rpc", "supervisor.getProcessInfo", name],
                                   ["rpc", "supervisor.readProcessStderrLog", name, -2048, 0], program=name)
        except ProcessError:
            info, tail = {}, ""
        why = info.get("spawnerr") or ("it exited right after starting" if code == ABNORMAL_TERMINATION
                                       else message or "it did not start")
        lines = [line for line in tail.split("\n") if line.strip()][-10:]
        stderr = "; stderr: " + " | ".join(lines) if lines else ""
        return ProcessError(f"{name} failed to start on {self.shell.name}: {why}{stderr}")

    def _stop(self, program, target):
        current = self.status(program)
        # A stopped (SIGSTOP) process would not see the stop signal until continued.
        paused = current.extra.get("paused", [current.name] if current.state == "paused" else [])
        ops = [["kill", name, "CONT"] for name in paused]
        results = self._batch(*ops, ["rpc", "supervisor.stopProcess", target, True])
        for result in results:
            if "ok" in result:
                self._check(result["ok"], program)
            elif result.get("fault") != NOT_RUNNING:
                raise self._error(result, program)

    def _scale(self, program, numprocs):
        if ":" in program:
            raise ProcessError("scale a program, not one of its processes")
        spec = self._spec(program)
        self.apply(replace(spec, numprocs=numprocs))

    def _spec(self, program):
        specs = self._run(["specs"])[0]
        if program not in specs:
            self.status(program)  # says when there is no such program
            raise ProcessError(f"{program}'s configuration on {self.shell.name} was not written by the portal; "
                               "change it where it is defined")
        return conf.spec_from(specs[program])

    def spec(self, program: str) -> ProgramSpec:
        """The ProgramSpec the portal last applied for program."""
        conf.program_name(program)
        return self._spec(program)

    def apply(self, spec: ProgramSpec) -> bool:
        content = conf.render(spec, python=self.python)  # validates before anything is sent
        ops = []
        if spec.memory_max is not None or spec.nofile is not None or spec.tasks_max is not None:
            ops.append(["install", conf.HELPER, _source("limit_exec.py")])
        ops.append(["apply", spec.name, content, conf.STAMP])
        return self._run(*ops, program=spec.name)[-1]["changed"]

    def remove(self, program: str) -> bool:
        if ":" in conf.program_name(program):
            raise ProcessError("remove a program, not one of its processes")
        return self._run(["remove", program, conf.STAMP], program=program)[0]["existed"]

    # Logs --------------------------------------------------------------------------------------

    def logs(self, program: str, *, stream: str = "stdout", lines: int = 200) -> list[str]:
        conf.program_name(program)
        method = {"stdout": "supervisor.readProcessStdoutLog", "stderr": "supervisor.readProcessStderrLog"}.get(stream)
        if method is None:
            raise ProcessError("stream must be stdout or stderr")
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 10000:
            raise ProcessError("lines must be from 1 to 10000")
        size = min(max(lines * 256, 16384), 4 * 2**20)
        text = self._run(["rpc", method, program, -size, 0], program=program)[0]
        found = text.split("\n")
        if len(text.encode()) >= size:
            found = found[1:]  # cut at the window's start
        if found and found[-1] == "":
            found.pop()
        return found[-lines:]

    def follow(self, program: str, *, on_line, cancel: CancelToken, stream: str = "stdout") -> None:
        conf.program_name(program)
        if stream not in ("stdout", "stderr"):
            raise ProcessError("stream must be stdout or stderr")
        errors = []

        def relay_line(source, text):
            if source == "stdout":
                on_line(stream, text)
            else:
                errors.append(text)

        argv = python_argv(_source("supervisor_relay.py"), "follow", program, stream, python=self.python)
        code = self.shell.stream(argv, on_line=relay_line, cancel=cancel)
        if cancel.is_set():
            return
        message = " ".join(errors)[-500:] or f"the log follower ended (exit {code})"
        if code == 4:
            raise ManagerUnavailable(f"{self.shell.name}: {message}")
        if code == 5 and "BAD_NAME" in message:
            raise ProcessError(f"supervisord on {self.shell.name} has no program {program!r}")
        raise ProcessError(f"following {program} on {self.shell.name}: {message}")


def _restarts_since(events, since):
    """Automatic restarts after `since`. A stop (by a person or the portal, a reconfiguration) ends
    the count: the restarts before it are not the loop of what runs now."""
    count, previous = 0, ""
    for at, kind, _, _ in events:
        if kind == "stopped":
            count = 0
        elif kind == "spawned" and previous == "exited" and at >= since:
            count += 1
        if kind != "running":
            previous = kind
    return count


def by_program(statuses: list[ProgramStatus]) -> list[ProgramStatus]:
    """One status per program: the processes of a group (numprocs > 1, or a group of programs) as one,
    their exits merged (oldest first) into extra["last_exits"]."""
    groups = {}
    for status in statuses:
        groups.setdefault(status.group or status.name, []).append(status)
    found = []
    for group, members in groups.items():
        if len(members) == 1 and members[0].name == group:
            found.append(members[0])
            continue
        status = _aggregate(group, members)
        status.extra["last_exits"] = sorted((e for s in members for e in s.extra.get("last_exits", [])),
                                            key=lambda e: e["at"])[-10:]
        status.extra["restarts_recent"] = sum(s.extra.get("restarts_recent", 0) for s in members)
        found.append(status)
    return found


def _aggregate(program, statuses):
    """One status for a program with several processes (numprocs > 1): its worst state."""
    worst = min(statuses, key=lambda s: WORST_FIRST.index(s.state) if s.state in WORST_FIRST else 0)
    first = statuses[0]
    return ProgramStatus(
        manager=first.manager, name=program, group=program, state=worst.state, raw_state=worst.raw_state,
        pids=[pid for s in statuses for pid in s.pids],
        restarts=sum(s.restarts or 0 for s in statuses), exit_code=worst.exit_code,
        started_at=min((s.started_at for s in statuses if s.started_at), default=None),
        stopped_at=max((s.stopped_at for s in statuses if s.stopped_at), default=None),
        description=worst.description, limits=first.limits,
        extra={"processes": [s.name for s in statuses], "paused": [s.name for s in statuses if s.state == "paused"],
               "crash_loop": any(s.extra.get("crash_loop") for s in statuses),
               "states": {s.name: s.state for s in statuses}, "exit_reason": worst.extra.get("exit_reason", ""),
               "stderr_tail": worst.extra.get("stderr_tail", []), "managed": first.extra.get("managed", False)},
    )


__all__ = ["BackendError", "SupervisorManager", "by_program", "install_plan"]
