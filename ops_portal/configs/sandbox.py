"""The Jinja2 sandbox configuration templates render in, with bounds on what one render may cost.

Jinja's own sandbox keeps templates away from Python internals; this one also refuses values that
would be huge (repetition, `%` and `format` field widths, `+` and `~` joins, numeric filter and
method arguments above the output limit) and counts operations: every loop iteration, call,
filter and intercepted operator ticks a per-render budget that ends the render after
MAX_OPERATIONS ticks or MAX_SECONDS. These give clear messages; the hard bounds on memory and CPU
come from rendering in a child process with resource limits (see rendering.py).
"""
import functools
import re
import threading
import time
from string import Formatter

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT = 1024 * 1024  # characters of one value and bytes of a rendered file
MAX_POWER = 1000
MAX_FIELD_WIDTH = 4096  # widths and precisions in `%` and format() specs
MAX_RANGE = 100_000
MAX_OPERATIONS = 1_000_000
MAX_SECONDS = 5.0
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BUDGET = threading.local()


class BudgetExceeded(SecurityError):
    """The render used up its operations or its time."""


def start_budget(*, stop=False):
    """Give this thread's next render a fresh budget (stop=True: no budget, e.g. after a render)."""
    _BUDGET.left = None if stop else MAX_OPERATIONS
    _BUDGET.deadline = time.monotonic() + MAX_SECONDS
    _BUDGET.seconds = MAX_SECONDS


def tick():
    left = getattr(_BUDGET, "left", None)
    if left is None:
        return
    _BUDGET.left = left - 1
    if left <= 0:
        raise BudgetExceeded(f"more than {MAX_OPERATIONS:,} operations (loops, calls, filters)")
    if time.monotonic() > _BUDGET.deadline:
        raise BudgetExceeded(f"rendering took longer than {_BUDGET.seconds:g} s")


def _counted(iterable):
    for item in iterable:
        tick()
        yield item


def _check_size(value, what):
    if isinstance(value, str | bytes | list | tuple | dict | set) and len(value) > MAX_OUTPUT:
        raise SecurityError(f"{what} would exceed the output limit")
    return value


def _check_numbers(args, kwargs, what):
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
            raise SecurityError(f"{what}: numbers above {MAX_OUTPUT} are not allowed")


def _check_percent(fmt):
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_FIELD_WIDTH):
                raise SecurityError(f"'%' field widths above {MAX_FIELD_WIDTH} (or '*') are not allowed")


def _check_format(fmt):
    for _, _, spec, _ in Formatter().parse(fmt):
        if spec and ("{" in spec or any(int(n) > MAX_FIELD_WIDTH for n in re.findall(r"\d+", spec))):
            raise SecurityError(f"format() field widths above {MAX_FIELD_WIDTH} are not allowed")


def bounded_range(*args):
    tick()
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() of more than {MAX_RANGE:,} items is not allowed")
    return _counted(numbers)


def _bounded_filter(name, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        tick()
        _check_numbers(args, kwargs, f"filter {name}")
        if name == "format" and args and isinstance(args[0], str):
            _check_percent(args[0])
        return _check_size(func(*args, **kwargs), f"filter {name}")

    return wrapper


class _CodeGenerator(CodeGenerator):
    """Counts every loop iteration and bounds `~` joins."""

    def visit_For(self, node, frame):  # noqa: N802 (Jinja's name)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None,
                               lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node, frame):  # noqa: N802
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """No attribute tricks, no mutation of the variables, no huge values, a budget per render."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options):
        super().__init__(**options)
        self.globals["range"] = bounded_range
        self.filters = {name: _bounded_filter(name, func) for name, func in self.filters.items()}

    @staticmethod
    def counted(iterable):
        return _counted(iterable)

    @staticmethod
    def bounded_join(parts):
        tick()
        pieces, size = [], 0
        for part in parts:
            text = part if isinstance(part, str) else str(part)
            size += len(text)
            if size > MAX_OUTPUT:
                raise SecurityError("joining with ~ would exceed the output limit")
            pieces.append(text)
        return "".join(pieces)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's signature)
        tick()
        _check_numbers(args, kwargs, "call")
        return _check_size(super().call(__context, __obj, *args, **kwargs), "a call")

    def call_binop(self, context, operator, left, right):
        tick()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and len(seq) * count > MAX_OUTPUT:
                    raise SecurityError("repetition would exceed the output limit")
        elif operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise SecurityError(f"exponents above {MAX_POWER} are not allowed")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left)
        elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            if len(left) + len(right) > MAX_OUTPUT:
                raise SecurityError("joining with + would exceed the output limit")
        return _check_size(super().call_binop(context, operator, left, right), f"'{operator}'")

    def wrap_str_format(self, value):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format(value.__self__)
        return wrapped


def environment():
    return Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, auto_reload=False,
                   cache_size=200)
