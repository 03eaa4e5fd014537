"""The PM2 manager: apps of one user's PM2 daemon through the `pm2` command, over a Shell.

Every command is an argv list run through `env PM2_DISCRETE_MODE=true` (PM2 7 prints a
banner before its JSON when it starts its daemon otherwise; the JSON is still found after
one). App names and configuration values are checked before anything is sent. apply()
writes one ecosystem JSON file per app under $PM2_HOME/opsportal/ and only when the file
changed deletes and starts the app again (PM2 reloads keep the old script and arguments).

PM2 always stops an app with SIGINT, then SIGKILL after kill_timeout (stopwaitsecs): a stop
signal of TERM (the spec's default) or INT is accepted, any other is refused.

Limits: memory through PM2's own max_memory_restart (the daemon checks every
PM2_WORKER_INTERVAL ms, 30 s by default, and restarts the app), open files through
util-linux `prlimit` around the command. PM2 cannot cap CPU or tasks; such specs are refused.
"""
from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

from ..base import CancelToken
from .base import ManagerInfo, ManagerUnavailable, ProcessError, ProgramManager, ProgramSpec, ProgramStatus
from .systemd_unit import SpecError, signal_name
from .systemd_unit import validate_spec as _validate_common

KNOWN_MAJORS = (5, 6, 7)
STATES = {"online": "running", "launching": "starting", "stopping": "stopping", "stopped": "stopped",
          "errored": "fatal", "waiting restart": "backoff", "one-launch-status": "exited"}
ACTS = {"start", "stop", "restart", "reload", "signal", "pause", "resume", "scale"}
PRLIMIT = "/usr/bin/prlimit"

DETECT = r"""
command -v pm2 >/dev/null 2>&1 || { echo "pm2=missing"; exit 0; }
home="${PM2_HOME:-$HOME/.pm2}"
echo "home=$home"
if [ -s "$home/pm2.pid" ] && kill -0 "$(cat "$home/pm2.pid")" 2>/dev/null; then echo daemon=running
else
    echo daemon=stopped
    # pm2 waits for ever on a daemon that cannot start in its home: tell before asking it.
    { mkdir -p "$home" && [ -w "$home" ]; } 2>/dev/null || { echo "home=unusable"; exit 0; }
fi
echo "version=$(pm2 --version 2>&1 | tail -n 1)"
"""

# sh -c WRITE opsportal-pm2 NAME < json: write $PM2_HOME/opsportal/NAME.json when it differs.
WRITE = r"""
d="${PM2_HOME:-$HOME/.pm2}/opsportal"; f="$d/$1.json"
umask 077; mkdir -p "$d"; cat >"$f.new" || exit 1
if [ -f "$f" ] && cmp -s "$f" "$f.new"; then rm -f "$f.new"; echo "same $f"; exit 0; fi
if [ -f "$f" ]; then cp -p "$f" "$f.old"; echo "changed $f"; else rm -f "$f.old"; echo "new $f"; fi
mv -f "$f.new" "$f"
"""
# sh -c RESTORE opsportal-pm2 NAME: put back the previous file (or remove a new one).
RESTORE = r"""
f="${PM2_HOME:-$HOME/.pm2}/opsportal/$1.json"
if [ -f "$f.old" ]; then mv -f "$f.old" "$f"; echo "restored $f"; else rm -f "$f"; fi
"""
# The daemon's own log names each restart for going over max_memory_restart.
MEMORY_RESTARTS = r'grep -h "exceeds --max-memory-restart" "${PM2_HOME:-$HOME/.pm2}/pm2.log" 2>/dev/null | tail -n 200'
MEMORY_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\S*.*Process (\d+) restarted because it exceeds "
                         r"--max-memory-restart value \(current_memory=(\d+) max_memory_limit=(\d+)")
FORGET = r'rm -f "${PM2_HOME:-$HOME/.pm2}/opsportal/$1.json" "${PM2_HOME:-$HOME/.pm2}/opsportal/$1.json.old"'
HOME_PATH = re.compile(r"/[A-Za-z0-9._/@+,:=-]*")


# PM2 takes a word that parseInt() reads as a number for a process id ("7web" is id 7 to
# `pm2 sendSignal`), and "all" for every app: app names start with a letter or "_".
APP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def app_name(name: str) -> str:
    if not isinstance(name, str) or not APP_NAME.fullmatch(name) or name == "all":
        raise SpecError(f"{name!r} is not a PM2 app name (must match {APP_NAME.pattern}, and not be 'all')")
    return name


def ecosystem(spec: ProgramSpec) -> dict:
    """Return the ecosystem file of a spec, after checking it."""
    if spec.cpu_quota is not None or spec.tasks_max is not None:
        raise SpecError("PM2 cannot limit CPU or the number of tasks; run this program under systemd for that")
    if str(spec.stopsignal).upper().removeprefix("SIG") not in ("TERM", "INT"):
        raise SpecError(f"PM2 stops apps with SIGINT (SIGKILL after stopwaitsecs); it cannot send {spec.stopsignal}")
    _validate_common(ProgramSpec(**{**spec.__dict__, "numprocs": 1, "name": app_name(spec.name)}))
    if isinstance(spec.numprocs, bool) or not isinstance(spec.numprocs, int) or not 1 <= spec.numprocs <= 64:
        raise SpecError("numprocs (PM2 instances) must be a whole number from 1 to 64")
    command = list(spec.command)
    if spec.nofile is not None:
        command = [PRLIMIT, f"--nofile={spec.nofile}:{spec.nofile}", "--", *command]
    app = {
        "name": spec.name, "script": command[0], "args": command[1:], "interpreter": "none", "exec_mode": "fork",
        "instances": spec.numprocs, "autorestart": spec.autorestart != "false",
        "autostart": spec.autostart, "min_uptime": max(1000, spec.startsecs * 1000),
        "max_restarts": spec.startretries + 1, "restart_delay": 1000,
        "kill_timeout": spec.stopwaitsecs * 1000, "merge_logs": True, "env": dict(sorted(spec.environment.items())),
    }
    if spec.directory:
        app["cwd"] = spec.directory
    if spec.user:
        app["uid"] = spec.user
    if spec.memory_max is not None:
        app["max_memory_restart"] = f"{spec.memory_max // 1024}K"
    return {"apps": [app]}


class PM2Manager(ProgramManager):
    """Apps of the PM2 daemon of the Shell's user (or of pm2_home)."""

    name = "pm2"

    def __init__(self, shell, *, pm2_home: str | None = None):
        super().__init__(shell)
        if pm2_home is not None and (not HOME_PATH.fullmatch(pm2_home) or "/../" in f"{pm2_home}/"):
            raise SpecError(f"PM2 home {pm2_home!r} must be an absolute path of [A-Za-z0-9._/@+,:=-]")
        self.pm2_home = pm2_home
        self._info = None
        self.why_not = {"freeze": "PM2 has no freezer: pause sends SIGSTOP", "thaw": "PM2 has no freezer",
                        "enable": "PM2 starts every saved app with its daemon; there is nothing to enable",
                        "disable": "PM2 has no disabled apps: stop or remove the app instead"}

    def _env(self):
        return ["env", "PM2_DISCRETE_MODE=true"] + ([f"PM2_HOME={self.pm2_home}"] if self.pm2_home else [])

    def _run(self, argv, *, stdin=None, timeout=90.0):
        return self.shell.run(self._env() + argv, stdin=stdin, timeout=timeout)

    def _pm2(self, *args, check=True, timeout=90.0):
        result = self._run(["pm2", *args], timeout=timeout)
        if check and not result.ok:
            raise ProcessError(f"pm2 {args[0]} on {self.shell.name}: {_error(result)}")
        return result

    # -- detection ------------------------------------------------------------------------

    def detect(self) -> ManagerInfo:
        out = self._run(["sh", "-c", DETECT], timeout=60).text()
        facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        version = facts.get("version", "").strip()
        info = ManagerInfo(self.name, False, version=version)
        major = version.split(".")[0]
        if facts.get("pm2") == "missing":
            info.reason = f"PM2 is not installed on {self.shell.name} (no pm2 command)"
        elif facts.get("home") == "unusable":
            info.reason = (f"the PM2 daemon on {self.shell.name} is not running and cannot start: "
                           f"its home {self.pm2_home or '~/.pm2'} cannot be written")
        elif not re.fullmatch(r"\d+\.\d+\.\d+", version):
            info.reason = f"cannot tell the PM2 version on {self.shell.name} from {version!r}"
        elif int(major) not in KNOWN_MAJORS:
            info.reason = (f"PM2 {version} is not a version this portal knows "
                           f"({', '.join(f'{m}.x' for m in KNOWN_MAJORS)})")
        else:
            info.available = True
            info.supports = frozenset(ACTS | {"apply", "remove", "logs"})
            info.reason = ("daemon running" if facts.get("daemon") == "running"
                           else "daemon not running: it starts on first use")
        self._info = info
        return info

    def _require(self):
        info = self._info or self.detect()
        if not info.available:
            raise ManagerUnavailable(info.reason)
        return info

    # -- listing --------------------------------------------------------------------------

    def _jlist(self):
        result = self._pm2("jlist", check=False, timeout=60)
        if not result.ok:
            raise ManagerUnavailable(f"the PM2 daemon on {self.shell.name} does not answer: {_error(result)}")
        return _json_array(result.text(), self.shell.name)

    def programs(self) -> list[ProgramStatus]:
        self._require()
        apps = {}
        for proc in self._jlist():
            apps.setdefault(proc.get("name", ""), []).append(proc)
        statuses = [self._status(name, procs) for name, procs in apps.items()]
        self._mark_paused(statuses)
        self._memory_restarts(statuses)
        return sorted(statuses, key=lambda s: s.name)

    def status(self, program: str) -> ProgramStatus:
        """One app's status; ProcessError when PM2 has no such app."""
        app_name(program)
        self._require()
        procs = [p for p in self._jlist() if p.get("name") == program]
        if not procs:
            raise ProcessError(f"no PM2 app {program} on {self.shell.name}")
        status = self._status(program, procs)
        self._mark_paused([status])
        self._memory_restarts([status])
        return status

    def _status(self, name, procs) -> ProgramStatus:
        envs = [p.get("pm2_env") or {} for p in procs]
        states = [STATES.get(e.get("status", ""), "unknown") for e in envs]
        # The app is as well as its worst instance: one errored instance makes it fatal.
        order = ("fatal", "backoff", "exited", "stopping", "starting", "stopped", "unknown", "running")
        state = min(states, key=order.index) if states else "unknown"
        first = envs[0] if envs else {}
        pids = [p.get("pid") for p in procs if p.get("pid")]
        restarts = sum(e.get("restart_time") or 0 for e in envs)
        unstable = sum(e.get("unstable_restarts") or 0 for e in envs)
        memory_limit = first.get("max_memory_restart")
        status = ProgramStatus(
            manager=self.name, name=name, state=state, raw_state=",".join(e.get("status", "") for e in envs),
            pids=pids, restarts=restarts, exit_code=first.get("exit_code"),
            started_at=(first.get("pm_uptime") / 1000) if state == "running" and first.get("pm_uptime") else None,
            limits={"memory_max": memory_limit} if memory_limit else {},
            extra={
                "instances": [{"pm_id": p.get("pm_id"), "pid": p.get("pid"), "status": e.get("status"),
                               "restarts": e.get("restart_time"), "memory": (p.get("monit") or {}).get("memory"),
                               "cpu": (p.get("monit") or {}).get("cpu")} for p, e in zip(procs, envs, strict=True)],
                "unstable_restarts": unstable, "exec_mode": first.get("exec_mode", ""),
                "autorestart": first.get("autorestart"), "memory": sum((p.get("monit") or {}).get("memory") or 0
                                                                      for p in procs),
                "out_logs": sorted({e.get("pm_out_log_path") for e in envs if e.get("pm_out_log_path")}),
                "err_logs": sorted({e.get("pm_err_log_path") for e in envs if e.get("pm_err_log_path")}),
                "crash_loop": state in ("fatal", "backoff") or unstable > 0,
                "created_at": (first.get("created_at") or 0) / 1000,
            },
        )
        status.extra["reason"] = _reason(status)
        return status

    def _mark_paused(self, statuses):
        pids = {pid: s for s in statuses if s.state == "running" for pid in s.pids}
        if not pids:
            return
        out = self.shell.run(["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, pids))], timeout=30).text()
        for line in out.splitlines():
            words = line.split()
            if len(words) == 2 and words[0].isdigit() and words[1].startswith("T") and int(words[0]) in pids:
                pids[int(words[0])].state = "paused"

    def _memory_restarts(self, statuses):
        """Say so when PM2 restarted an app for going over its memory limit (from the daemon's log)."""
        watched = [s for s in statuses if s.restarts and s.limits.get("memory_max")]
        if not watched:
            return
        out = self._run(["sh", "-c", MEMORY_RESTARTS], timeout=30).text()
        events = []
        for line in out.splitlines():
            found = MEMORY_LINE.search(line)
            if found:
                when = datetime.strptime(found[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
                events.append((when, int(found[2]), int(found[3])))
        for status in watched:
            ids = {i["pm_id"] for i in status.extra["instances"]}
            # pm_ids of deleted apps come back: count only what happened since this app was made.
            mine = [(when, used) for when, pm_id, used in events
                    if pm_id in ids and when >= status.extra["created_at"] - 1]
            if mine:
                status.extra["memory_restarts"] = len(mine)
                status.extra["reason"] = (f"restarted by PM2 {len(mine)} time(s) for going over its memory limit "
                                          f"(max_memory_restart={status.limits['memory_max']} bytes; last at "
                                          f"{mine[-1][1]} bytes)")

    # -- actions --------------------------------------------------------------------------

    def act(self, program: str, action: str, **options) -> ProgramStatus:
        app_name(program)  # a bad name is refused before anything runs
        if action == "signal":
            signal_name(options.get("signal", "TERM"))
        self._require()
        if action not in ACTS:
            raise ProcessError(self.why_not.get(action) or f"PM2 has no action {action!r}")
        before = self.status(program)  # unknown apps fail here, before anything is done
        if action in ("start", "stop", "restart", "reload"):
            self._pm2(action, program)
        elif action == "scale":
            count = options.get("instances")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 64:
                raise SpecError("instances must be a whole number from 1 to 64")
            self._pm2("scale", program, str(count))
        else:
            signal = {"pause": "SIGSTOP", "resume": "SIGCONT"}.get(action) or signal_name(options.get("signal", "TERM"))
            for instance in before.extra["instances"]:  # by id: sendSignal misreads some names
                self._pm2("sendSignal", signal, str(instance["pm_id"]))
        if action in ("start", "stop", "scale"):
            self._pm2("save", check=False)
        return self.status(program)

    # -- configuration --------------------------------------------------------------------

    def apply(self, spec: ProgramSpec) -> bool:
        """Write the app's ecosystem file; start it anew only when it changed. True if it changed.

        An app that does not come up (or restarts within startsecs) is rolled back: the
        previous file and app are restored (or the new app deleted) and ProcessError raised
        with the last lines of its error log.
        """
        config = json.dumps(ecosystem(spec), indent=2, sort_keys=True) + "\n"
        self._require()
        existing = {p.get("name") for p in self._jlist()}
        wrote = self._run(["sh", "-c", WRITE, "opsportal-pm2", spec.name], stdin=config.encode(), timeout=30)
        if not wrote.ok:
            raise ProcessError(f"could not write the ecosystem file of {spec.name} on {self.shell.name}: "
                               f"{_error(wrote)}")
        what, _, path = wrote.text().strip().partition(" ")
        if what == "same" and spec.name in existing:
            return False
        if what == "new" and spec.name in existing:
            self._run(["sh", "-c", RESTORE, "opsportal-pm2", spec.name], timeout=30)
            raise ProcessError(f"PM2 app {spec.name} on {self.shell.name} was not made by the portal; "
                               "not replacing it")
        try:
            if spec.name in existing:
                self._pm2("delete", spec.name)
            self._pm2("start", path)
            if spec.autostart:
                self._watch(spec.name, spec.startsecs)
        except ProcessError as exc:
            self._roll_back(spec.name, restart_old=spec.name in existing)
            raise ProcessError(f"{exc}\nthe previous configuration of {spec.name} was restored") from exc
        self._pm2("save", check=False)
        return True

    def _watch(self, name, startsecs):
        if not startsecs:
            return  # as supervisord's startsecs=0: running once started
        deadline = time.monotonic() + startsecs
        while True:
            status = self.status(name)
            if status.state not in ("running", "starting") or status.restarts:
                tail = self.logs(name, stream="stderr", lines=10)
                raise ProcessError(f"{name} on {self.shell.name} did not stay up for {startsecs}s "
                                   f"({status.raw_state}, {status.restarts} restarts)"
                                   + ("\nlast lines of its stderr:\n" + "\n".join(tail) if tail else ""))
            if time.monotonic() >= deadline:
                return
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))

    def _roll_back(self, name, restart_old):
        self._pm2("delete", name, check=False)
        restored = self._run(["sh", "-c", RESTORE, "opsportal-pm2", name], timeout=30).text()
        if restart_old and restored.startswith("restored "):
            self._pm2("start", restored.strip().partition(" ")[2], check=False)
        self._pm2("save", check=False)

    def remove(self, program: str) -> bool:
        """Delete the app from PM2 (and its ecosystem file); False when there is no such app."""
        app_name(program)
        self._require()
        if program not in {p.get("name") for p in self._jlist()}:
            return False
        self._pm2("delete", program)
        self._run(["sh", "-c", FORGET, "opsportal-pm2", program], timeout=30)
        self._pm2("save", check=False)
        return True

    # -- logs -----------------------------------------------------------------------------

    def _log_paths(self, program, stream):
        if stream not in ("stdout", "stderr"):
            raise SpecError("stream must be stdout or stderr")
        status = self.status(program)
        paths = status.extra["out_logs" if stream == "stdout" else "err_logs"]
        if not paths:
            raise ProcessError(f"PM2 keeps no {stream} log for {program} on {self.shell.name}")
        return paths

    def logs(self, program: str, *, stream: str = "stdout", lines: int = 200) -> list[str]:
        """The last lines of the app's stdout or stderr log file (as PM2 names them in jlist)."""
        if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= 100_000:
            raise SpecError("lines must be a whole number from 1 to 100000")
        paths = self._log_paths(program, stream)
        result = self.shell.run(["tail", "-q", "-n", str(lines), "--", *paths], timeout=60)
        return result.text().splitlines()[-lines:]

    def follow(self, program: str, *, on_line, cancel: CancelToken, stream: str = "stdout") -> None:
        """Call on_line(stream, text) for each new line of the app's log until cancel is set."""
        paths = self._log_paths(program, stream)

        def line(source, text):
            if source == "stdout" and not cancel.is_set():
                on_line(stream, text)

        self.shell.stream(["tail", "-q", "-n", "0", "-F", "--", *paths], on_line=line, cancel=cancel)


def _error(result):
    text = result.stderr.decode("utf-8", "replace").strip() or result.text().strip()
    return text[-2000:] or f"exit code {result.exit_code}"


def _json_array(text, host):
    """The JSON array pm2 printed, after any banner it printed first."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        if line.startswith("["):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise ProcessError(f"pm2 jlist on {host} did not answer with JSON: {text.strip()[-300:]!r}")


def _reason(status):
    if status.state == "fatal":
        return (f"PM2 gave up after {status.extra['unstable_restarts']} unstable restarts (crash loop); "
                "start it again once the cause is fixed")
    if status.state == "backoff":
        return f"exited and waits to be restarted ({status.restarts} restarts so far)"
    if status.state == "stopped" and status.exit_code not in (None, 0):
        return f"exited with code {status.exit_code}"
    return ""
