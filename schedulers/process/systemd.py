"""The systemd manager: service units through `systemctl` and `journalctl`, over a Shell.

Every command is an argv list; unit names and configuration values are checked by
systemd_unit before anything is sent, and unit names always follow `--`, so none can be read
as an option. Freezing needs the unified cgroup hierarchy (cgroup v2) and systemd 246; where
either is missing, pause and resume send SIGSTOP and SIGCONT to every process of the unit.

On cgroup v1 systemd reports an OOM kill as Result=signal (SIGKILL); units the portal made
carry an ExecStopPost hook that records the OOM kills their memory cgroup counted, so the
manager can still say a program was stopped for going over its memory limit.
"""
from __future__ import annotations

import json
import time

from ..base import CancelToken
from . import systemd_show as show
from .base import ManagerInfo, ManagerUnavailable, ProcessError, ProgramManager, ProgramSpec, ProgramStatus
from .systemd_unit import (
    EXIT_DIR,
    MARKER,
    RESTART_SEC,
    UNIT_DIR,
    SpecError,
    render,
    signal_name,
    unit_glob,
    unit_name,
    validate_spec,
)

MIN_VERSION = 240  # MemoryMax= on cgroup v1, NRestarts, ExecStopPost's $SERVICE_RESULT
FREEZE_VERSION = 246
UNIX_TIMESTAMPS = 251  # systemctl --timestamp=unix
PROPERTIES = (
    "Id", "Description", "LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath", "MainPID",
    "ExecMainCode", "ExecMainStatus", "ExecMainStartTimestamp", "ExecMainExitTimestamp", "NRestarts", "Result",
    "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic", "InactiveExitTimestampMonotonic",
    "Restart", "StartLimitBurst", "MemoryMax", "MemoryCurrent", "CPUQuotaPerSecUSec", "TasksMax", "LimitNOFILE",
    "FreezerState",
)
STATES = {  # (ActiveState, SubState) → normalised state; ActiveState alone as the fallback
    ("activating", "auto-restart"): "backoff",
    ("active", "exited"): "exited",
    "active": "running", "reloading": "running", "activating": "starting", "deactivating": "stopping",
    "inactive": "stopped", "failed": "exited", "maintenance": "stopped",
}
CLD = {"1": "exited", "2": "killed", "3": "dumped"}  # ExecMainCode: how the main process ended
ACTS = {"start", "stop", "restart", "reload", "enable", "disable", "signal", "pause", "resume", "freeze", "thaw"}

DETECT = r"""
echo "pid1=$(cat /proc/1/comm 2>/dev/null)"
echo "cgroupfs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
if command -v systemctl >/dev/null 2>&1; then
    echo "version=$(systemctl --version 2>/dev/null | head -n 1)"
    echo "system=$(systemctl is-system-running 2>&1)"
fi
"""

WRITE = 'umask 022; mkdir -p "$(dirname "$1")"; cat >"$1.opsportal-new" && mv -f "$1.opsportal-new" "$1"'


class SystemdManager(ProgramManager):
    """Service units of one host's systemd.

    prefix: only units named <prefix><program>.service are this manager's (programs() lists
    them, program names are given without prefix and suffix); pattern: without a prefix,
    programs() lists only units matching this glob (default: every service unit).
    """

    name = "systemd"

    def __init__(self, shell, *, prefix: str = "", pattern: str | None = None):
        super().__init__(shell)
        if prefix:
            unit_name("x", prefix=prefix)  # the prefix must make valid unit names
        self.prefix = prefix
        self.pattern = unit_glob(pattern) if pattern else None
        self._info = None
        self.why_not = {}  # action → why this host does not offer it

    # -- detection ------------------------------------------------------------------------

    def detect(self) -> ManagerInfo:
        out = self.shell.run(["sh", "-c", DETECT], timeout=30).text()
        facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        version_line = facts.get("version", "")
        words = version_line.split()
        version = words[1] if len(words) > 1 and words[0] == "systemd" else ""
        info = ManagerInfo(self.name, False, version=version)
        if "version" not in facts:
            info.reason = f"systemd is not installed on {self.shell.name} (no systemctl)"
        elif facts.get("pid1") != "systemd":
            info.reason = (f"{self.shell.name} did not boot systemd: its PID 1 is {facts.get('pid1') or 'unknown'}, "
                           "so there are no units to manage")
        elif not version.split("~")[0].isdigit():
            info.reason = f"cannot tell the systemd version from {version_line!r}"
        elif int(version.split("~")[0]) < MIN_VERSION:
            info.reason = f"systemd {version} is older than {MIN_VERSION}, the oldest version this portal knows"
        elif facts.get("system") in ("offline", "unknown", "") or "Failed to" in facts.get("system", ""):
            info.reason = f"systemd on {self.shell.name} does not answer ({facts.get('system') or 'no state'})"
        else:
            info.available = True
            number = int(version.split("~")[0])
            supports = set(ACTS) | {"apply", "remove", "logs"}
            self.why_not = {"scale": "systemd runs one main process per unit; there is nothing to scale"}
            if number < FREEZE_VERSION or facts.get("cgroupfs") != "cgroup2fs":
                supports -= {"freeze", "thaw"}
                self.why_not["freeze"] = self.why_not["thaw"] = (
                    f"freezing needs systemd {FREEZE_VERSION} on cgroup v2; this host has systemd {version} on "
                    f"cgroup {'v2' if facts.get('cgroupfs') == 'cgroup2fs' else 'v1'} (pause sends SIGSTOP instead)")
            info.supports = frozenset(supports)
            info.reason = f"system state: {facts.get('system')}"
        self._info = info
        return info

    def _require(self) -> ManagerInfo:
        info = self._info or self.detect()
        if not info.available:
            raise ManagerUnavailable(info.reason)
        return info

    def _version(self):
        return int(self._require().version.split("~")[0])

    # -- running systemctl ------------------------------------------------------------------

    def _systemctl(self, *args, check=True, timeout=90.0):
        result = self.shell.run(["systemctl", "--no-pager", "--no-ask-password", *args], timeout=timeout)
        if check and not result.ok:
            error = (result.stderr.decode("utf-8", "replace").strip() or result.text().strip()
                     or f"exit code {result.exit_code}")
            raise ProcessError(f"systemctl {args[0]} on {self.shell.name}: {error}")
        return result

    def _show(self, units):
        """Return {unit: {property: value}} for units, in one `systemctl show`."""
        if not units:
            return {}
        stamp = ["--timestamp=unix"] if self._version() >= UNIX_TIMESTAMPS else []
        out = self._systemctl("show", *stamp, "-p", ",".join(PROPERTIES), "--", *units).text()
        # One block per unit, in the order asked (an alias answers with its target's Id).
        return dict(zip(units, show.blocks(out), strict=False))

    def unit(self, program: str) -> str:
        return unit_name(program, prefix=self.prefix)

    def _program_name(self, unit):
        base = unit.removesuffix(".service")
        return base.removeprefix(self.prefix) if self.prefix else base

    # -- listing --------------------------------------------------------------------------

    def programs(self) -> list[ProgramStatus]:
        self._require()
        patterns = [f"{self.prefix}*.service"] if self.prefix else [self.pattern or "*.service"]
        listed = self._systemctl("list-units", "--all", "--type=service", "--plain", "--no-legend", "--",
                                 *patterns).text()
        files = self._systemctl("list-unit-files", "--type=service", "--no-legend", "--", *patterns).text()
        units = []
        for line in listed.splitlines() + files.splitlines():
            words = line.split()
            if words and words[0].endswith(".service") and not words[0].endswith("@.service") \
                    and words[0] not in units and words[1:2] != ["alias"]:
                units.append(words[0])
        shown = self._show(units)
        # An alias (sshd.service for ssh.service) answers with its unit's Id: listed once, as that unit.
        statuses = [self._status(unit, props) for unit, props in shown.items()
                    if props.get("LoadState") not in ("not-found", "") and props.get("Id") == unit]
        self._add_details(statuses)
        return sorted(statuses, key=lambda s: s.name)

    def status(self, program: str) -> ProgramStatus:
        """One unit's status; ProcessError when the host has no such unit."""
        unit = self.unit(program)
        self._require()
        props = self._show([unit]).get(unit, {})
        if props.get("LoadState") in ("not-found", "", None) and props.get("ActiveState") in ("inactive", None, ""):
            raise ProcessError(f"no unit {unit} on {self.shell.name}")
        status = self._status(unit, props)
        self._add_details([status])
        return status

    def _status(self, unit, p) -> ProgramStatus:
        active, sub = p.get("ActiveState", ""), p.get("SubState", "")
        state = STATES.get((active, sub)) or STATES.get(active, "unknown")
        if show.gave_up(p):
            state = "fatal"
        if p.get("FreezerState") in ("frozen", "freezing"):
            state = "paused"
        pid = show.to_int(p.get("MainPID"))
        how = CLD.get(p.get("ExecMainCode", ""), "")
        code = show.to_int(p.get("ExecMainStatus"))
        status = ProgramStatus(
            manager=self.name, name=self._program_name(unit), state=state, raw_state=f"{active}/{sub}",
            pids=[pid] if pid else [], restarts=show.to_int(p.get("NRestarts")),
            exit_code=code if how == "exited" else None,
            started_at=show.stamp(p.get("ExecMainStartTimestamp")),
            stopped_at=show.stamp(p.get("ExecMainExitTimestamp")),
            description=p.get("Description", ""),
            limits={key: value for key, value in (
                ("memory_max", show.limit(p.get("MemoryMax"))),
                ("cpu_quota", show.cpu_percent(p.get("CPUQuotaPerSecUSec"))),
                ("tasks_max", show.limit(p.get("TasksMax"))), ("nofile", show.limit(p.get("LimitNOFILE")))) if value},
            extra={"unit": unit, "result": p.get("Result", ""), "enabled": p.get("UnitFileState", ""),
                   "restart_policy": p.get("Restart", ""), "freezer": p.get("FreezerState", ""),
                   "managed": False, "memory_current": show.limit(p.get("MemoryCurrent"))},
        )
        if how in ("killed", "dumped"):
            status.extra["exit_signal"] = show.signal_of(p.get("ExecMainStatus"))
        status.extra["crash_loop"] = show.gave_up(p) or sub == "auto-restart"
        status.extra["path"] = p.get("FragmentPath", "")
        status.extra["managed"] = status.extra["path"] == f"{UNIT_DIR}/{unit}"
        status.extra["reason"] = show.reason(p, status)
        return status

    def _add_details(self, statuses):
        """Mark stopped (SIGSTOP) main processes as paused; attach the exit records of portal units."""
        pids = {s.pids[0]: s for s in statuses if s.pids and s.state == "running"}
        if pids:
            out = self.shell.run(["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, pids))], timeout=30).text()
            for line in out.splitlines():
                words = line.split()
                if len(words) == 2 and words[0].isdigit() and words[1].startswith("T") and int(words[0]) in pids:
                    pids[int(words[0])].state = "paused"
        managed = {f"{EXIT_DIR}/{s.extra['unit']}.exit": s for s in statuses if s.extra.get("managed")}
        if not managed:
            return
        out = self.shell.run(["grep", "-sH", "", "--", *managed], timeout=30).text()
        records = {}
        for line in out.splitlines():
            path, _, record = line.partition(":")
            if path in managed:
                records[path] = record.split()
        for path, status in managed.items():
            record = records.get(path)
            if not record or len(record) < 5:
                continue
            last = {"time": show.to_int(record[0]), "result": record[1], "code": record[2], "status": record[3],
                    "oom_kills": show.to_int(record[4]) or 0}
            status.extra["last_exit"] = last
            if last["oom_kills"] and status.extra["result"] in ("signal", "oom-kill", "success", ""):
                limit = status.limits.get("memory_max")
                status.extra["oom_killed"] = True
                status.extra["reason"] = ("killed by the kernel for going over its memory limit"
                                          + (f" (MemoryMax={limit} bytes)" if limit else "")
                                          + (", then restarted" if status.state in ("running", "backoff") else ""))

    # -- actions --------------------------------------------------------------------------

    def act(self, program: str, action: str, **options) -> ProgramStatus:
        unit = self.unit(program)  # a bad name is refused before anything runs
        if action == "signal":
            signal_name(options.get("signal", "TERM"))
        info = self._require()
        if action not in ACTS:
            raise ProcessError(self.why_not.get(action) or f"systemd has no action {action!r}")
        if action not in info.supports:
            raise ProcessError(self.why_not.get(action, f"{action} is not offered on {self.shell.name}"))
        self.status(program)  # unknown units fail here, before anything is done
        if action in ("start", "stop", "restart", "reload"):
            result = self._systemctl(action, "--", unit, check=False)
            if not result.ok:
                raise ProcessError(self._failure(unit, action, result))
        elif action in ("enable", "disable", "freeze", "thaw"):
            self._systemctl(action, "--", unit)
        elif action == "signal":
            whom = options.get("whom", "all")
            if whom not in ("main", "all", "control"):
                raise SpecError(f"whom must be main, all or control, not {whom!r}")
            self._kill(unit, signal_name(options.get("signal", "TERM")), whom)
        elif action in ("pause", "resume"):
            if "freeze" in info.supports:
                self._systemctl("freeze" if action == "pause" else "thaw", "--", unit)
            else:
                self._kill(unit, "SIGSTOP" if action == "pause" else "SIGCONT", "all")
        return self.status(program)

    def _kill(self, unit, signal, whom):
        self._systemctl("kill", f"--signal={signal}", f"--kill-who={whom}", "--", unit)

    def _failure(self, unit, action, result):
        error = result.stderr.decode("utf-8", "replace").strip() or f"exit code {result.exit_code}"
        tail = self.logs(unit, lines=10)
        return f"{action} {unit} on {self.shell.name} failed: {error}" + (
            "\nlast lines of its journal:\n" + "\n".join(tail) if tail else "")

    # -- configuration --------------------------------------------------------------------

    def apply(self, spec: ProgramSpec) -> bool:
        """Write the unit of spec; reload and restart only when it changed. True if it changed.

        A new configuration that does not start (or stay up for startsecs) is rolled back:
        the previous unit file is restored (or the new one removed) and ProcessError raised
        with the last lines of the journal.
        """
        validate_spec(spec)
        unit = unit_name(spec.name, prefix=self.prefix)
        text = render(spec, unit)
        self._require()
        path = f"{UNIT_DIR}/{unit}"
        before = self.shell.run(["cat", "--", path], timeout=30)
        old = before.stdout.decode("utf-8", "replace") if before.ok else None
        if old is not None and not old.startswith(MARKER):
            raise ProcessError(f"{path} on {self.shell.name} was not written by the portal; not overwriting it")
        if old is not None and old.rstrip("\n") == text.rstrip("\n"):
            return False
        was_active = old is not None and self._show([unit]).get(unit, {}).get("ActiveState") == "active"
        self._write(path, text)
        try:
            self._systemctl("daemon-reload")
            self._systemctl("enable" if spec.autostart else "disable", "--", unit)
            if spec.autostart or was_active:
                self._start_and_watch(unit, spec.startsecs)
        except ProcessError as exc:
            self._roll_back(unit, path, old, was_active)
            raise ProcessError(f"{exc}\nthe previous configuration of {unit} was restored") from exc
        return True

    def _start_and_watch(self, unit, startsecs):
        """Restart unit and check that its main process stays up for startsecs.

        The verdict comes from systemd's own clock (the main process's start and exit times, in
        microseconds since boot), not from when the portal looked: on a slow link or a loaded host
        the first look may come after a process that lived long enough has already ended, and a
        process that ended too soon is caught however late it is looked at."""
        # A new configuration gets a fresh start: the start limit a crash loop of the old one hit
        # ("start request repeated too quickly"), its failed state and restart count are forgotten.
        self._systemctl("reset-failed", "--", unit, check=False)
        result = self._systemctl("restart", "--", unit, check=False)
        if not result.ok:
            raise ProcessError(self._failure(unit, "start", result))
        if not startsecs:
            return  # as supervisord's startsecs=0: running once started
        needed, wait = startsecs * 1_000_000, RESTART_SEC * 1_000_000
        deadline = time.monotonic() + startsecs
        while True:
            props = self._show([unit]).get(unit, {})
            # InactiveExit: when this start began (the unit stays "activating" between automatic
            # restarts, so they do not move it); ExecMainStart: when the current process began.
            # NRestarts is no help here: a restart that finds the unit waiting to be restarted
            # automatically does not zero it.
            since = _micros(props, "InactiveExitTimestampMonotonic")
            began = _micros(props, "ExecMainStartTimestampMonotonic")
            ended = _micros(props, "ExecMainExitTimestampMonotonic")
            if since and began and began - since >= wait:
                # Restarted already: the first process lived at most the time to the current start,
                # less the RestartSec systemd waited after each end (NRestarts, zeroed by
                # reset-failed above, counts them; at least one).
                restarts = max(1, _micros(props, "NRestarts"))
                if began - since - restarts * wait >= needed:
                    return
                self._did_not_stay_up(unit, startsecs, props)
            if since and began and ended >= began:
                if ended - began >= needed:
                    return  # it lived long enough; a later crash is the crash loop's business
                self._did_not_stay_up(unit, startsecs, props)
            if props.get("ActiveState") != "active":
                self._did_not_stay_up(unit, startsecs, props)
            if time.monotonic() >= deadline:
                return
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))

    def _did_not_stay_up(self, unit, startsecs, props):
        raise ProcessError(f"{unit} on {self.shell.name} did not stay up for {startsecs}s "
                           f"({props.get('ActiveState')}/{props.get('SubState')}, result "
                           f"{props.get('Result')})\nlast lines of its journal:\n"
                           + "\n".join(self.logs(unit, lines=10)))

    def _roll_back(self, unit, path, old, was_active):
        self._systemctl("stop", "--", unit, check=False)
        if old is None:
            self._systemctl("disable", "--", unit, check=False)
            self.shell.run(["rm", "-f", "--", path], timeout=30)
        else:
            self._write(path, old)
        self._systemctl("daemon-reload", check=False)
        self._systemctl("reset-failed", "--", unit, check=False)
        if old is not None and was_active:
            self._systemctl("start", "--", unit, check=False)

    def _write(self, path, text):
        result = self.shell.run(["sh", "-c", WRITE, "opsportal-write", path], stdin=text.encode(), timeout=30)
        if not result.ok:
            raise ProcessError(f"could not write {path} on {self.shell.name}: "
                               f"{result.stderr.decode('utf-8', 'replace').strip()}")

    def remove(self, program: str) -> bool:
        """Stop and disable a unit the portal made and delete its file; False when there is none."""
        unit = self.unit(program)
        self._require()
        path = f"{UNIT_DIR}/{unit}"
        head = self.shell.run(["head", "-n", "1", "--", path], timeout=30)
        if not head.ok:
            return False
        if head.text().rstrip("\n") != MARKER:
            raise ProcessError(f"{path} on {self.shell.name} was not written by the portal; not removing it")
        self._systemctl("disable", "--now", "--", unit, check=False)
        self.shell.run(["rm", "-f", "--", path, f"{EXIT_DIR}/{unit}.exit"], timeout=30)
        self._systemctl("daemon-reload")
        self._systemctl("reset-failed", "--", unit, check=False)
        return True

    # -- logs -----------------------------------------------------------------------------

    def logs(self, program: str, *, stream: str = "stdout", lines: int = 200) -> list[str]:
        """The unit's last journal lines (messages only).

        The journal keeps a unit's stdout and stderr as one stream, so `stream` selects
        nothing here; entries() has times and priorities.
        """
        self.status(program)  # an unknown unit is an error, not an empty journal
        return [entry["message"] for entry in self.entries(program, lines=lines)]

    def entries(self, program: str, *, lines: int = 200, since: float | None = None,
                until: float | None = None) -> list[dict]:
        """The unit's journal entries as {time, priority, pid, message}, oldest first."""
        unit = self.unit(program)
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 100_000:
            raise SpecError("lines must be a whole number from 1 to 100000")
        argv = ["journalctl", "--no-pager", "-o", "json", "-n", str(lines), f"--unit={unit}"]
        for flag, value in (("--since", since), ("--until", until)):
            if value is not None:
                argv.append(f"{flag}=@{float(value):.6f}")
        result = self.shell.run(argv, timeout=60)
        if not result.ok:
            raise ProcessError(f"journalctl on {self.shell.name}: {result.stderr.decode('utf-8', 'replace').strip()}")
        found = []
        for line in result.text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            found.append({"time": (show.to_int(entry.get("__REALTIME_TIMESTAMP")) or 0) / 1e6,
                          "priority": show.to_int(entry.get("PRIORITY")), "pid": show.to_int(entry.get("_PID")),
                          "message": show.message(entry.get("MESSAGE"))})
        return found

    def follow(self, program: str, *, on_line, cancel: CancelToken, stream: str = "stdout") -> None:
        """Call on_line(stream, text) for each new journal line of the unit until cancel is set."""
        unit = self.unit(program)
        self.status(program)

        def line(source, text):
            # journalctl's own complaints go to its stderr; nothing is passed on after cancel.
            if source == "stdout" and not cancel.is_set():
                on_line(stream, text)

        self.shell.stream(["journalctl", "--no-pager", "-f", "-n", "0", "-o", "cat", f"--unit={unit}"],
                          on_line=line, cancel=cancel)



def _micros(props, name) -> int:
    """A number property (monotonic timestamps in microseconds), 0 when unset or not given."""
    try:
        return int(props.get(name) or 0)
    except ValueError:
        return 0
