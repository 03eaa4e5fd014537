"""Rendering configuration templates for one host: Jinja2 in a sandbox, strict about undefined names,
bounded in memory and time.

The template sees plain data only, never model instances: the variables of the host's groups
(sorted by name, later groups win), then the host's own variables, and `host` with its name,
address, environment, groups, tags and facts. Credentials, settings and job secrets are not in
reach. A missing variable is a RenderError naming it (and the line), not an empty string.

Templates are compiled here and rendered in a forked child process with resource limits
(RENDER_MEMORY more address space, a CPU-time limit) and a wall-clock timeout enforced by the
parent, which kills the child; the sandbox's own budget (sandbox.py) usually ends a runaway render
first with a clearer message. Many renders share one child (render_many); a child that dies or
runs out of time fails the render it was on, and the rest go on in a fresh child.
"""
import copy
import math
import os
import resource
import select
import signal
import struct
import sys
import time

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError, TemplateError

from . import sandbox
from .sandbox import MAX_OUTPUT

MAX_POWER = sandbox.MAX_POWER
RENDER_MEMORY = 256 * 1024 * 1024  # bytes of address space a render may add
RENDER_TIMEOUT = 10.0  # wall-clock seconds per render (the sandbox stops itself after 5), then a kill
_FRAME = struct.Struct("!IBI")  # item index, ok (1) or error (0), payload length
_ENV = sandbox.environment()

__all__ = ["MAX_OUTPUT", "RenderError", "TemplateSyntaxError", "context_for", "parse", "render", "render_many"]


class RenderError(Exception):
    """The template could not be rendered for a host; the message says why in plain words."""


def parse(source):
    """Compile template source; raises TemplateSyntaxError."""
    try:
        return _ENV.from_string(source)
    except RecursionError:
        raise TemplateSyntaxError("the template is nested too deeply", 1) from None


def context_for(host, groups, environment_name):
    """The variables a template sees for `host` (a Host) with its `groups` (HostGroups)."""
    variables = {}
    for group in sorted(groups, key=lambda g: g.name):
        variables.update(copy.deepcopy(group.variables or {}))
    variables.update(copy.deepcopy(host.variables or {}))
    variables["host"] = {
        "name": host.name,
        "address": host.address,
        "environment": environment_name,
        "groups": sorted(g.name for g in groups),
        "tags": list(host.tags or []),
        "facts": copy.deepcopy(host.facts or {}),
    }
    return variables


def _template_line():
    """The template line of the exception being handled (Jinja maps its frames to template lines)."""
    tb = sys.exc_info()[2]
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_here(template, variables, name):
    """Render in this process (the child); returns bytes or raises RenderError."""
    sandbox.start_budget()
    try:
        chunks, size = [], 0
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderError(f"{name}: the rendered file is larger than {MAX_OUTPUT // 1024} KiB")
            chunks.append(chunk)
        return "".join(chunks).encode("utf-8")
    except UndefinedError as exc:
        line = _template_line()
        where = f" (line {line})" if line else ""
        raise RenderError(f"{name}: undefined variable{where}: {exc.message}")
    except SecurityError as exc:
        raise RenderError(f"{name}: refused by the template sandbox: {exc}")
    except TemplateError as exc:
        raise RenderError(f"{name}: {type(exc).__name__}: {exc}")
    except MemoryError:
        raise RenderError(f"{name}: rendering needs more than {RENDER_MEMORY // 2**20} MiB of memory")
    except (TypeError, ValueError, ArithmeticError, LookupError, OverflowError, RecursionError) as exc:
        line = _template_line()
        where = f" on line {line}" if line else ""
        raise RenderError(f"{name}: {type(exc).__name__}{where}: {str(exc)[:500]}")
    finally:
        sandbox.start_budget(stop=True)


def _limit_child(count):
    try:
        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (current + RENDER_MEMORY, current + RENDER_MEMORY))
    except (OSError, ValueError):
        pass  # no /proc (not Linux): the sandbox's own bounds remain
    seconds = math.ceil(RENDER_TIMEOUT * count) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _child(write_fd, batch):
    """In the forked child: render each item, write one frame per result, never return."""
    status = 1
    try:
        _limit_child(len(batch))
        for index, template, variables, name in batch:
            try:
                payload, ok = _render_here(template, variables, name), 1
            except RenderError as exc:
                payload, ok = str(exc).encode("utf-8", "replace"), 0
            data = _FRAME.pack(index, ok, len(payload)) + payload
            while data:
                data = data[os.write(write_fd, data):]
        status = 0
    finally:
        os._exit(status)  # no atexit handlers, no closing of the parent's connections


def _read_exactly(fd, size, deadline):
    poller = select.poll()  # not select(): a busy web process has descriptors above FD_SETSIZE
    poller.register(fd, select.POLLIN)
    data = b""
    while len(data) < size:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise TimeoutError
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _run_batch(batch, results):
    """Render batch items in one child until it finishes or fails one; return how many are done."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, batch)
    os.close(write_fd)
    done = 0
    try:
        for index, _, _, name in batch:
            deadline = time.monotonic() + RENDER_TIMEOUT
            try:
                position, ok, length = _FRAME.unpack(_read_exactly(read_fd, _FRAME.size, deadline))
                payload = _read_exactly(read_fd, length, deadline + RENDER_TIMEOUT)
            except TimeoutError:
                results[index] = RenderError(f"{name}: rendering took longer than {RENDER_TIMEOUT:g} s")
                return done + 1
            except EOFError:
                results[index] = RenderError(f"{name}: rendering was stopped: it needed more than "
                                             f"{RENDER_MEMORY // 2**20} MiB of memory or too much CPU time")
                return done + 1
            results[position] = payload if ok else RenderError(payload.decode("utf-8", "replace"))
            done += 1
        return done
    finally:
        os.close(read_fd)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # reaped by someone else's SIGCHLD handler
            pass


def render_many(items):
    """Render [(source, variables, name)]; returns a list of bytes or RenderError, in order."""
    results = [None] * len(items)
    pending = []
    for index, (source, variables, name) in enumerate(items):
        try:
            pending.append((index, parse(source), variables, name))
        except TemplateSyntaxError as exc:
            results[index] = RenderError(f"{name}: template syntax error on line {exc.lineno}: {exc.message}")
    while pending:
        pending = pending[_run_batch(pending, results):]
    return results


def render(source, variables, *, name="template"):
    """Render source with variables; returns bytes (UTF-8) or raises RenderError."""
    result = render_many([(source, variables, name)])[0]
    if isinstance(result, RenderError):
        raise result
    return result
