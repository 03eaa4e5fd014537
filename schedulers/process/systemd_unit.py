"""Unit names and unit files for the systemd manager: validation and systemd's quoting rules.

Everything a caller hands in is checked here before anything reaches a host. A unit file line
is parsed by systemd in three passes, and a value must survive each of them unchanged:

1. `%` specifiers are expanded on the whole line: a literal `%` is written `%%`;
2. the line is split into words, honouring double quotes and C-style escapes: each word is
   written in double quotes, with `\\` and `"` escaped;
3. at exec time `$NAME` and `${NAME}` are replaced from the environment (ExecStart= only):
   a literal `$` is written `$$`.

A newline would start a new directive, so no value may hold a control character.
"""
from __future__ import annotations

import re

from .base import ProcessError, ProgramSpec


class SpecError(ProcessError, ValueError):
    """A program name, unit name or configuration value was refused before anything ran."""


# systemd's unit name grammar: a prefix of [A-Za-z0-9:_.\-] (and "\" escapes), an optional
# "@instance", and the type suffix; at most 255 characters (UNIT_NAME_MAX).
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.service")
UNIT_NAME_MAX = 255
# A program the portal creates: one plain name, as the supervisord manager accepts.
PROGRAM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}")
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/@+,:=-]*")
GLOB = re.compile(r"[A-Za-z0-9:_.\\@*?\[\]-]{1,255}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
STOP_SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2")
SIGNALS = STOP_SIGNALS + ("STOP", "CONT", "ABRT", "ALRM", "WINCH", "PIPE")
RESTART = {"true": "always", "false": "no", "unexpected": "on-failure"}
MARKER = "# Managed by the ops portal (opsportal-managed): changes made here are overwritten."
UNIT_DIR = "/etc/systemd/system"
EXIT_DIR = "/run/opsportal/systemd"
MIN_MEMORY = 4 * 2**20
RESTART_SEC = 1


def unit_name(program: str, *, prefix: str = "") -> str:
    """Return the service unit for a program name ("web" or "web.service"); refuse anything else."""
    if not isinstance(program, str) or not program:
        raise SpecError("the unit name is empty")
    unit = program if program.endswith(".service") else f"{prefix}{program}.service"
    if program.endswith(".service") and prefix and not unit.startswith(prefix):
        raise SpecError(f"unit {program!r} is outside this manager's prefix {prefix!r}")
    if len(unit) > UNIT_NAME_MAX or not UNIT_NAME.fullmatch(unit) or unit.startswith(("-", ".")) \
            or unit.endswith("@.service"):
        raise SpecError(f"{program!r} is not a systemd service unit name")
    return unit


def unit_glob(pattern: str) -> str:
    """Return a unit name pattern for `systemctl list-units`, refusing anything but unit name characters."""
    if not isinstance(pattern, str) or not GLOB.fullmatch(pattern) or pattern.startswith("-"):
        raise SpecError(f"{pattern!r} is not a unit name pattern")
    return pattern if pattern.endswith((".service", "*")) else f"{pattern}.service"


def signal_name(value) -> str:
    """Return "SIGTERM" for "TERM", "SIGTERM" or 15 among the signals the portal sends."""
    numbers = {"HUP": 1, "INT": 2, "QUIT": 3, "ABRT": 6, "KILL": 9, "USR1": 10, "USR2": 12, "PIPE": 13,
               "ALRM": 14, "TERM": 15, "CONT": 18, "STOP": 19, "WINCH": 28}
    if isinstance(value, int) and not isinstance(value, bool):
        for name, number in numbers.items():
            if number == value:
                return f"SIG{name}"
    if isinstance(value, str):
        name = value.upper().removeprefix("SIG")
        if name in SIGNALS:
            return f"SIG{name}"
    raise SpecError(f"signal {value!r} is not one of {', '.join(SIGNALS)}")


def _text(value, what):
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string")
    if _CONTROL.search(value):
        raise SpecError(f"{what} {value!r} contains a newline or control character")
    return value


def _int(value, what, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{what} must be a whole number from {low} to {high}, not {value!r}")
    return value


def validate_spec(spec: ProgramSpec) -> ProgramSpec:
    """Check every field of spec for a systemd unit; raise SpecError naming the first bad one."""
    if not isinstance(spec.name, str) or not PROGRAM_NAME.fullmatch(spec.name):
        raise SpecError(f"program name {spec.name!r} must match {PROGRAM_NAME.pattern}")
    if not isinstance(spec.command, list | tuple) or not spec.command:
        raise SpecError("the command must be a non-empty list of arguments")
    for word in spec.command:
        _text(word, "command argument")
    if not spec.command[0].startswith("/"):
        raise SpecError(f"the command must start with an absolute path, not {spec.command[0]!r}")
    if spec.directory and (not SAFE_PATH.fullmatch(_text(spec.directory, "directory"))
                           or "/../" in f"{spec.directory}/"):
        raise SpecError(f"directory {spec.directory!r} must be an absolute path of [A-Za-z0-9._/@+,:=-]")
    if not isinstance(spec.environment, dict):
        raise SpecError("the environment must be a mapping of names to strings")
    for key, value in spec.environment.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            raise SpecError(f"environment variable name {key!r} is not an identifier")
        _text(value, f"environment variable {key}")
    if spec.user and not USER_NAME.fullmatch(_text(spec.user, "user")):
        raise SpecError(f"user {spec.user!r} is not a user name or id")
    if spec.autorestart not in RESTART:
        raise SpecError(f"autorestart must be one of {', '.join(RESTART)}, not {spec.autorestart!r}")
    if not isinstance(spec.autostart, bool):
        raise SpecError("autostart must be true or false")
    signal_name(spec.stopsignal)
    if str(spec.stopsignal).upper().removeprefix("SIG") not in STOP_SIGNALS:
        raise SpecError(f"stop signal must be one of {', '.join(STOP_SIGNALS)}")
    _int(spec.startsecs, "startsecs", 0, 3600)
    _int(spec.startretries, "startretries", 0, 100)
    _int(spec.stopwaitsecs, "stopwaitsecs", 1, 3600)
    if spec.numprocs != 1:
        raise SpecError("a systemd unit runs one main process: numprocs must be 1")
    if spec.memory_max is not None:
        _int(spec.memory_max, "memory_max (bytes)", MIN_MEMORY, 2**50)
    if spec.cpu_quota is not None:
        _int(spec.cpu_quota, "cpu_quota (percent of one CPU)", 1, 100_000)
    if spec.tasks_max is not None:
        _int(spec.tasks_max, "tasks_max", 1, 4_194_304)
    if spec.nofile is not None:
        _int(spec.nofile, "nofile", 16, 1_048_576)
    return spec


def quote_word(word: str, *, exec_line: bool = True) -> str:
    """Quote one word of an ExecStart=/Environment= line so systemd reads back exactly `word`."""
    _text(word, "value")
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if exec_line:
        escaped = escaped.replace("$", "$$")
    return f'"{escaped}"'


def exec_line(argv) -> str:
    return " ".join(quote_word(word) for word in argv)


# Runs after every stop of a unit the portal made (`+`: as root, whatever User= says). On
# cgroup v1 systemd cannot tell an OOM kill from any other SIGKILL (Result=signal), but the
# unit's memory cgroup still exists while this runs and counts the OOM kills of this run.
# One command a line here, joined with "; " (a unit file value holds no newline).
EXIT_HOOK = "; ".join(r"""
c=$(sed -n 's/^[0-9]*:memory:\(.*\)/\1/p' /proc/self/cgroup)
f=/sys/fs/cgroup/memory$c/memory.oom_control
[ -n "$c" ] && [ -r "$f" ] || { c=$(sed -n 's/^0::\(.*\)/\1/p' /proc/self/cgroup); f=/sys/fs/cgroup$c/memory.events; }
n=$(sed -n 's/^oom_kill //p' "$f" 2>/dev/null)
mkdir -p "$2"
r="$(date +%s) ${SERVICE_RESULT:--} ${EXIT_CODE:--} ${EXIT_STATUS:--} ${n:-0}"
echo "$r" >>"$2/$1.exit"
tail -n 20 "$2/$1.exit" >"$2/$1.exit.tmp" && mv -f "$2/$1.exit.tmp" "$2/$1.exit"
""".strip().splitlines())


def render(spec: ProgramSpec, unit: str) -> str:
    """Return the unit file for a validated spec."""
    retries = spec.startretries + 1
    lines = [
        MARKER,
        "[Unit]",
        f"Description={spec.name} (ops portal program)",
        # A program that fails `retries` times within this window is given up on: start-limit-hit.
        f"StartLimitIntervalSec={max(10, retries * (RESTART_SEC + spec.startsecs) * 3)}",
        f"StartLimitBurst={retries}",
        "",
        "[Service]",
        # simple, not exec: a start job of Type=exec fails (and is not restarted) when the
        # program exits at once; apply() watches the first startsecs instead.
        "Type=simple",
        f"ExecStart={exec_line(spec.command)}",
        f"ExecStopPost=+/bin/sh -c {quote_word(EXIT_HOOK)} opsportal-exit {quote_word(unit)} "
        f"{quote_word(EXIT_DIR)}",
        f"SyslogIdentifier={spec.name}",
        f"Restart={RESTART[spec.autorestart]}",
        f"RestartSec={RESTART_SEC}",
        f"KillSignal={signal_name(spec.stopsignal)}",
        f"TimeoutStopSec={spec.stopwaitsecs}",
    ]
    if spec.directory:
        lines.append(f"WorkingDirectory={spec.directory.replace('%', '%%')}")
    if spec.user:
        lines.append(f"User={spec.user}")
    for key, value in sorted(spec.environment.items()):
        lines.append(f"Environment={quote_word(f'{key}={value}', exec_line=False)}")
    if spec.memory_max is not None:
        lines += [f"MemoryMax={spec.memory_max}", "MemorySwapMax=0"]
    if spec.cpu_quota is not None:
        lines.append(f"CPUQuota={spec.cpu_quota}%")
    if spec.tasks_max is not None:
        lines.append(f"TasksMax={spec.tasks_max}")
    if spec.nofile is not None:
        lines.append(f"LimitNOFILE={spec.nofile}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)
