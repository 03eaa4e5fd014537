"""A ProgramSpec as a supervisord program section: checked, then written so supervisord reads it back
exactly as meant.

What supervisord does with a value, and so what is refused or escaped here:
- the file is read by configparser with `;` and `#` as inline comment starts when preceded by
  whitespace: a value containing whitespace followed by `;` or `#` is refused (it would be cut);
- a value continues on the next line when that line is indented, and `[` starts a section:
  newlines, NUL and other control characters are refused everywhere;
- `command` and `environment` are %-expanded (`%(program_name)s`): `%` is written as `%%`; and
  `%(here)s` is replaced before that, so it is refused;
- `command` is split with shlex in POSIX mode: argv is joined with shlex.join;
- `environment` is split with shlex in non-POSIX mode (no escapes) and each value stripped of
  quote characters at both ends: a value is wrapped in the quote it does not contain; values
  with both quote kinds, or starting or ending with a quote, are refused.
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, replace

from ..hostlib import validate
from .base import ProcessError, ProgramSpec

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
PROCESS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?")
STOP_SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2")
AUTORESTART = ("true", "false", "unexpected")
# C0 and C1 controls and the Unicode line separators: anything a reader might take for a line end.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_COMMENT = re.compile(r"\s[;#]")
STAMP = "opsportal-managed"
HELPER = "/usr/local/lib/opsportal/limit-exec"
LOG_DIR = "/var/log/supervisor"
MIN_MEMORY = 4 * 2**20


class SpecError(ProcessError, ValueError):
    """A ProgramSpec that cannot be written safely; the message says which field and why."""


def program_name(name, *, what="program name"):
    """A program or group name, or group:process; refuse anything else."""
    if not isinstance(name, str) or not PROCESS_NAME.fullmatch(name):
        raise SpecError(f"{what} {name!r} must be letters, digits, '_', '.' or '-' (at most 64, "
                        "not starting with '.' or '-'), or group:process")
    return name


def _text(value, what):
    if not isinstance(value, str):
        raise SpecError(f"{what} must be a string")
    if _CONTROL.search(value):
        raise SpecError(f"{what} {value!r} contains a newline, NUL or another control character")
    if "%(here)s" in value:
        raise SpecError(f"{what} {value!r} contains %(here)s, which supervisord would replace")
    return value


def _int(value, what, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{what} must be a whole number from {low} to {high}")
    return value


def validate_spec(spec: ProgramSpec) -> ProgramSpec:
    """Check every field of spec; return it, or raise SpecError naming the field."""
    if not isinstance(spec.name, str) or not NAME.fullmatch(spec.name):
        raise SpecError(f"program name {spec.name!r} must be letters, digits, '_', '.' or '-' "
                        "(at most 64, not starting with '.' or '-')")
    if not isinstance(spec.command, list | tuple) or not spec.command:
        raise SpecError("command must be a non-empty list of arguments")
    for arg in spec.command:
        _text(arg, "command argument")
    if not spec.command[0].strip():
        raise SpecError("the program to run (command[0]) is empty")
    if spec.directory:
        try:
            validate.remote_path(_text(spec.directory, "directory"), what="directory")
        except ValueError as exc:
            raise SpecError(str(exc))
        if "%" in spec.directory:
            raise SpecError("directory must not contain '%' (supervisord expands it)")
    if spec.user:
        try:
            validate.posix_name(spec.user, what="user")
        except ValueError as exc:
            raise SpecError(str(exc))
    if not isinstance(spec.environment, dict):
        raise SpecError("environment must be a mapping of names to strings")
    for key, value in spec.environment.items():
        if not isinstance(key, str) or not validate.ENV_NAME.fullmatch(key):
            raise SpecError(f"environment variable name {key!r} is not an identifier")
        _env_value(key, value)
    if not isinstance(spec.autostart, bool):
        raise SpecError("autostart must be true or false")
    if spec.autorestart not in AUTORESTART:
        raise SpecError(f"autorestart must be one of {', '.join(AUTORESTART)}")
    if spec.stopsignal not in STOP_SIGNALS:
        raise SpecError(f"stopsignal must be one of {', '.join(STOP_SIGNALS)}")
    _int(spec.startsecs, "startsecs", 0, 3600)
    _int(spec.startretries, "startretries", 0, 100)
    _int(spec.stopwaitsecs, "stopwaitsecs", 1, 3600)
    _int(spec.numprocs, "numprocs", 1, 200)
    if spec.memory_max is not None:
        _int(spec.memory_max, "memory_max", MIN_MEMORY, 2**50)
    if spec.nofile is not None:
        _int(spec.nofile, "nofile", 16, 2**20)
    if spec.tasks_max is not None:
        _int(spec.tasks_max, "tasks_max", 1, 2**22)
    if spec.cpu_quota is not None:
        raise SpecError("supervisord cannot limit CPU (cpu_quota); run the program under systemd for that")
    return spec


def _env_value(key, value):
    value = _text(value, f"environment variable {key}")
    if value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
        raise SpecError(f"environment variable {key}: supervisord strips quotes at the start and end "
                        "of a value, so it cannot start or end with a quote")
    if "'" in value and '"' in value:
        raise SpecError(f"environment variable {key}: supervisord cannot hold a value with both ' and \"")
    return value


def _escape(value):
    return value.replace("%", "%%")


def _env_line(environment):
    parts = []
    for key, value in environment.items():
        quote = "'" if '"' in value else '"'
        parts.append(f"{key}={quote}{_escape(value)}{quote}")
    return ",".join(parts)


def limits_of(spec: ProgramSpec) -> dict:
    """{limit: {"value", "enforced_by"}} as the rendered config enforces them."""
    limits = {}
    if spec.memory_max is not None:
        limits["memory_max"] = {"value": spec.memory_max,
                                "enforced_by": "watchdog: SIGKILL when the main process's RSS is over it "
                                               "(checked every 0.2 s)"}
    if spec.nofile is not None:
        limits["nofile"] = {"value": spec.nofile, "enforced_by": "kernel: RLIMIT_NOFILE"}
    if spec.tasks_max is not None:
        limits["tasks_max"] = {"value": spec.tasks_max,
                               "enforced_by": "kernel: RLIMIT_NPROC (all processes of the user; not for root)"}
    return limits


def render(spec: ProgramSpec, *, python: str = "/usr/bin/python3") -> str:
    """The config file for spec (validated first); its second line carries the spec as JSON."""
    validate_spec(spec)
    argv = list(spec.command)
    if spec.memory_max is not None or spec.nofile is not None or spec.tasks_max is not None:
        wrapper = [python, HELPER]
        for flag, value in (("--memory", spec.memory_max), ("--nofile", spec.nofile), ("--nproc", spec.tasks_max)):
            if value is not None:
                wrapper += [flag, str(value)]
        argv = [*wrapper, "--", *argv]
    process_name = "%(program_name)s" if spec.numprocs == 1 else "%(program_name)s_%(process_num)02d"
    log = f"{LOG_DIR}/{'%(program_name)s' if spec.numprocs == 1 else '%(program_name)s_%(process_num)02d'}"
    values = [
        ("command", _escape(shlex.join(argv))),
        ("process_name", process_name),
        ("numprocs", str(spec.numprocs)),
        ("directory", spec.directory),
        ("user", spec.user),
        ("environment", _env_line(spec.environment)),
        ("autostart", "true" if spec.autostart else "false"),
        ("autorestart", spec.autorestart),
        ("startsecs", str(spec.startsecs)),
        ("startretries", str(spec.startretries)),
        ("stopsignal", spec.stopsignal),
        ("stopwaitsecs", str(spec.stopwaitsecs)),
        ("stopasgroup", "true"),
        ("killasgroup", "true"),
        ("redirect_stderr", "false"),
        ("stdout_logfile", f"{log}.out.log"),
        ("stderr_logfile", f"{log}.err.log"),
        ("stdout_logfile_maxbytes", "10MB"),
        ("stderr_logfile_maxbytes", "10MB"),
        ("stdout_logfile_backups", "2"),
        ("stderr_logfile_backups", "2"),
    ]
    lines = [f"; Written by the ops portal ({STAMP}); changes made here are replaced on its next apply.",
             f"; opsportal-spec: {json.dumps(asdict(spec), sort_keys=True, separators=(',', ':'))}",
             f"[program:{spec.name}]"]
    for key, value in values:
        if value == "":
            continue
        if _COMMENT.search(value):
            raise SpecError(f"{key} would contain whitespace followed by ';' or '#', which supervisord reads "
                            "as the start of a comment")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def spec_from(data: dict) -> ProgramSpec:
    """A ProgramSpec from the JSON the config carries (unknown keys ignored)."""
    fields = ProgramSpec.__dataclass_fields__
    return replace(ProgramSpec(name=data["name"], command=list(data["command"])),
                   **{k: v for k, v in data.items() if k in fields and k not in ("name", "command")})
