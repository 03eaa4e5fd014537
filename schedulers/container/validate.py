"""Grammar checks for specs, done before anything is sent to an engine. No I/O.

Each check returns the normalised value or records a message under the field's path in an
Errors collector; SpecError carries all of them at once, as {field: [messages]}, so the API
can answer 400 with field errors.
"""
import math
import re

# distribution/reference's grammar (what the engine itself accepts).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # services, containers, networks, volumes, stacks
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
CAPABILITY = re.compile(r"(?:CAP_)?[A-Z_]+|ALL")
CONSTRAINT = re.compile(r"(node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[\w.-]+)"
                        r"|engine\.labels\.[\w.-]+)\s*(==|!=)\s*(\S.*)")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NANO = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
MAX_DURATION = 7 * 24 * 3600 * 10**9


class SpecError(ValueError):
    """A spec was refused before anything was sent; `errors` maps field paths to messages."""

    def __init__(self, errors: dict):
        self.errors = {name: list(messages) for name, messages in errors.items()}
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in self.errors.items()))

    def __reduce__(self):
        return type(self), (self.errors,)


class Errors:
    """Collect field errors; raise them together."""

    def __init__(self):
        self.errors = {}

    def add(self, field, message):
        self.errors.setdefault(field, []).append(message)

    def __bool__(self):
        return bool(self.errors)

    def raise_if_any(self):
        if self.errors:
            raise SpecError(self.errors)


def image_reference(value, errors, field="image"):
    """Check an image reference ([registry[:port]/]name[:tag][@digest]); return it unchanged."""
    if not isinstance(value, str) or not value:
        errors.add(field, "an image reference is required")
        return value
    match = IMAGE_REFERENCE.fullmatch(value)
    if match is None:
        errors.add(field, f"{value!r} is not an image reference: lower-case name[:tag][@sha256:digest], "
                          f"optionally after registry[:port]/")
        return value
    if len(match.group("name")) > 255:
        errors.add(field, "the image name is longer than 255 characters")
    digest = match.group("digest")
    if digest and digest.startswith("sha256:") and len(digest) != 7 + 64:
        errors.add(field, "a sha256 digest has 64 hexadecimal digits")
    return value


def name(value, errors, field="name", *, what="name", max_length=63):
    if not isinstance(value, str) or not NAME.fullmatch(value or ""):
        errors.add(field, f"{what} {value!r} must start with a letter or digit and contain only "
                          f"letters, digits, '_', '.' and '-'")
    elif len(value) > max_length:
        errors.add(field, f"{what} is longer than {max_length} characters")
    return value


def integer(value, errors, field, *, low=None, high=None, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(field, f"{value!r} is not a whole number")
        return value
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        errors.add(field, f"{value} is out of bounds: {bounds}")
    return value


def number(value, errors, field, *, low=None, high=None, optional=False, low_open=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        errors.add(field, f"{value!r} is not a number")
        return value
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        errors.add(field, f"{value} is out of bounds: {'above' if low_open else 'from'} {low}"
                          + (f" to {high}" if high is not None else ""))
    return value


def port(value, errors, field):
    return integer(value, errors, field, low=1, high=65535)


def duration(value, errors, field, *, optional=True, high=MAX_DURATION):
    """Seconds (int/float) or a Go duration ("1m30s", "500ms"); return nanoseconds."""
    if value is None and optional:
        return None
    nanos = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float) and math.isfinite(value):
        nanos = int(round(value * 10**9))
    elif isinstance(value, str) and value:
        text, pos, total = value.strip(), 0, 0.0
        for part in _DURATION_PART.finditer(text):
            if part.start() != pos:
                break
            total += float(part.group(1)) * NANO[part.group(2)]
            pos = part.end()
        if pos == len(text) and text:
            nanos = int(round(total))
    if nanos is None:
        errors.add(field, f"{value!r} is not a duration: seconds, or like 1m30s, 500ms, 2h")
        return None
    if nanos < 0 or nanos > high:
        errors.add(field, f"{value!r} is out of bounds: from 0 to {high // 10**9}s")
    return nanos


def size(value, errors, field, *, optional=True, low=4 * 2**20):
    """Bytes (int) or a size with a binary unit ("512m", "1g"); return bytes."""
    if value is None and optional:
        return None
    result = None
    if isinstance(value, int) and not isinstance(value, bool):
        result = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match:
            unit = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2).lower()]
            result = int(float(match.group(1)) * unit)
    if result is None:
        errors.add(field, f"{value!r} is not a size: bytes, or like 512m, 1g")
        return None
    if result < low:
        errors.add(field, f"{value!r} is too small: at least {low // 2**20}m")
    return result


def text(value, errors, field, *, optional=True, max_length=4096):
    if value is None and optional:
        return None
    if not isinstance(value, str) or "\x00" in value:
        errors.add(field, "must be text without NUL characters")
    elif len(value) > max_length:
        errors.add(field, f"is longer than {max_length} characters")
    return value


def string_list(value, errors, field, *, optional=True):
    if value is None and optional:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        errors.add(field, "must be a list of strings (an argument vector, not one shell line)")
        return value
    for index, item in enumerate(value):
        text(item, errors, f"{field}[{index}]", optional=False)
    return list(value)


def env(value, errors, field="env"):
    if not isinstance(value, dict):
        errors.add(field, "must map variable names to values")
        return {}
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            errors.add(f"{field}.{key}", f"{key!r} is not a variable name")
        if not isinstance(item, str) or "\x00" in item:
            errors.add(f"{field}.{key}", "the value must be text without NUL characters")
    return dict(value)


def labels(value, errors, field="labels"):
    if not isinstance(value, dict):
        errors.add(field, "must map label keys to values")
        return {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or _CONTROL.search(key) or "=" in key or len(key) > 255:
            errors.add(f"{field}.{key}", f"{key!r} is not a label key")
        if not isinstance(item, str) or "\x00" in item:
            errors.add(f"{field}.{key}", "the value must be text without NUL characters")
    return dict(value)


def choice(value, errors, field, choices):
    if value not in choices:
        errors.add(field, f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


def constraint(value, errors, field):
    if not isinstance(value, str) or not CONSTRAINT.fullmatch(value.strip()):
        errors.add(field, f"{value!r} is not a placement constraint like node.role==manager "
                          f"or node.labels.zone!=b")
    return value


def capability(value, errors, field):
    if not isinstance(value, str) or not CAPABILITY.fullmatch(value.upper()):
        errors.add(field, f"{value!r} is not a Linux capability name")
        return value
    upper = value.upper()
    return upper if upper == "ALL" or upper.startswith("CAP_") else f"CAP_{upper}"


def absolute_path(value, errors, field):
    if not isinstance(value, str) or not value.startswith("/") or "\x00" in value or _CONTROL.search(value):
        errors.add(field, f"{value!r} is not an absolute path")
    elif ".." in value.split("/"):
        errors.add(field, f"{value!r} contains '..'")
    return value
