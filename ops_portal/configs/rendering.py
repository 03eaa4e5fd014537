"""Rendering configuration templates for one host: Jinja2 in a sandbox, strict about undefined names.

The template sees plain data only, never model instances: the variables of the host's groups
(sorted by name, later groups win), then the host's own variables, and `host` with its name,
address, environment, groups, tags and facts. Credentials, settings and job secrets are not in
reach. A missing variable is a RenderError naming it (and the line), not an empty string.
"""
import copy
import sys

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT = 1024 * 1024  # bytes of rendered content
MAX_POWER = 1000

__all__ = ["MAX_OUTPUT", "RenderError", "TemplateSyntaxError", "context_for", "parse", "render"]


class RenderError(Exception):
    """The template could not be rendered for a host; the message says why in plain words."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """No attribute tricks, no mutation of the variables, and no huge values from `*` or `**`."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and len(seq) * count > MAX_OUTPUT:
                    raise SecurityError("repetition would exceed the output limit")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponents above {MAX_POWER} are not allowed")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, auto_reload=False,
                cache_size=200)


def parse(source):
    """Compile template source; raises TemplateSyntaxError."""
    return _ENV.from_string(source)


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


def render(source, variables, *, name="template"):
    """Render source with variables; returns bytes (UTF-8) or raises RenderError."""
    try:
        template = parse(source)
        chunks, size = [], 0
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderError(f"{name}: the rendered file is larger than {MAX_OUTPUT // 1024} KiB")
            chunks.append(chunk)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{name}: template syntax error on line {exc.lineno}: {exc.message}")
    except UndefinedError as exc:
        line = _template_line()
        where = f" (line {line})" if line else ""
        raise RenderError(f"{name}: undefined variable{where}: {exc.message}")
    except SecurityError as exc:
        raise RenderError(f"{name}: refused by the template sandbox: {exc}")
    except TemplateError as exc:
        raise RenderError(f"{name}: {type(exc).__name__}: {exc}")
    except (TypeError, ValueError, ArithmeticError, LookupError, OverflowError, RecursionError) as exc:
        line = _template_line()
        where = f" on line {line}" if line else ""
        raise RenderError(f"{name}: {type(exc).__name__}{where}: {exc}")
    return "".join(chunks).encode("utf-8")
