"""Checks on what a configuration template may hold, done before anything is stored.

Paths, modes and owners end up in SFTP calls and id lookups on hosts (schedulers.hostlib checks
them again there); the service action is a command an administrator chose, run only by the jobs
engine; template content is parsed here so a syntax error is a field error, not a job failure.
"""
import re

from django.core.exceptions import ValidationError

from schedulers.hostlib import validate as hostlib

from .rendering import TemplateSyntaxError, parse

MAX_PATH = 1024
MAX_CONTENT = 256 * 1024
MAX_SERVICE_ACTION = 4096
# Conservative on purpose: what configuration files are named, nothing a shell or a reader
# could misread (no spaces, quotes, globs, `~` or `$`).
PATH_CHARS = re.compile(r"^/[A-Za-z0-9._+@:/-]+\Z")
# Pseudo filesystems: writing there is not managing a configuration file.
FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")


def path(value):
    """Return the path if it is an absolute, normalised file path in the allowed alphabet."""
    if not isinstance(value, str) or not value:
        raise ValidationError("Give an absolute file path such as /etc/app/app.conf.")
    if len(value) > MAX_PATH:
        raise ValidationError(f"At most {MAX_PATH} characters.")
    try:
        normal = hostlib.file_path(value)
    except ValueError as exc:
        raise ValidationError(f"Unsafe path: {exc}.")
    if normal != value or value.endswith("/"):
        raise ValidationError(f"Write the path in its normal form ({normal}): no '..', '.', '//' or trailing '/'.")
    if not PATH_CHARS.match(value):
        raise ValidationError("Use letters, digits and . _ + @ : - / only (no spaces, quotes or shell characters).")
    if any(value == root or value.startswith(root + "/") for root in FORBIDDEN_ROOTS):
        raise ValidationError(f"Files under {', '.join(FORBIDDEN_ROOTS)} are not configuration files.")
    if any(part.startswith("-") for part in value.split("/")):
        raise ValidationError("No path component may start with '-'.")
    return value


def mode(value):
    """Permission bits 0 to 0777 (no setuid, setgid or sticky bit), or None to keep the file's."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValidationError("Give permission bits from 0000 to 0777 (no setuid, setgid or sticky bits).")
    return value


def parse_mode(text):
    """'0644', '644' or '0o644' -> 420. Decimal numbers are refused: 644 is not 0644."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        raise ValidationError("Give the mode as an octal string such as \"0644\".")
    text = text.strip().lower()
    text = text[2:] if text.startswith("0o") else text
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise ValidationError("Give the mode as 3 or 4 octal digits such as \"0644\".")
    return mode(int(text, 8))


def format_mode(value):
    return None if value is None else f"{value:04o}"


def posix_name(value, *, what):
    """A POSIX user or group name (or numeric id); empty means "leave as it is"."""
    if value in (None, ""):
        return ""
    try:
        return hostlib.posix_name(value, what=what)
    except ValueError:
        raise ValidationError(f"Not a POSIX {what} name: use letters, digits, '_', '.', '-' (at most 32, "
                              "not starting with a digit or '-'), or a numeric id.")


def service_action(value):
    """One line of shell, run on the host only after the file changed (empty: none)."""
    if not value:
        return ""
    if not isinstance(value, str) or len(value) > MAX_SERVICE_ACTION:
        raise ValidationError(f"At most {MAX_SERVICE_ACTION} characters.")
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValidationError("Give one line (chain steps with && if needed).")
    return value


def content(value):
    """Parse template content; a syntax error names its line."""
    if not isinstance(value, str):
        raise ValidationError("Give the template as text.")
    if len(value.encode()) > MAX_CONTENT:
        raise ValidationError(f"At most {MAX_CONTENT // 1024} KiB.")
    if "\x00" in value:
        raise ValidationError("The template must not contain NUL characters.")
    try:
        parse(value)
    except TemplateSyntaxError as exc:
        raise ValidationError(f"Template syntax error on line {exc.lineno}: {exc.message}")
    return value
