"""Structured values (parameters, plans, audit before/after) as highlighted JSON or YAML, and the
difference of two of them, rendered on the server into escaped HTML with classes.

A value becomes lines of (class, text) tokens; the HTML is built from those with every text
escaped, so no page ever puts untrusted data into innerHTML. The YAML here is for reading: strings
that a YAML parser would take for something else are quoted as JSON strings (valid YAML too).
"""
import difflib
import json
import re

from django.utils.html import escape
from django.utils.safestring import mark_safe

FORMATS = ("json", "yaml")
# Long runs of unchanged lines in a diff are cut to this many lines of context on each side.
CONTEXT = 3
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@+-]*( [A-Za-z0-9_./@+()-]+)*\Z")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "~", "y", "n"}


def _scalar(value):
    """(class, text) of a value that is not a non-empty container."""
    if value is None:
        return ("null", "null")
    if isinstance(value, bool):
        return ("bool", "true" if value else "false")
    if isinstance(value, (int, float)):
        return ("num", json.dumps(value))
    if isinstance(value, dict):
        return ("punct", "{}")
    if isinstance(value, (list, tuple)):
        return ("punct", "[]")
    return ("str", json.dumps(str(value), ensure_ascii=False))


def _yaml_scalar(value):
    kind, text = _scalar(value)
    if kind == "str":
        raw = str(value)
        if _PLAIN.match(raw) and raw.lower() not in _YAML_WORDS:
            return ("str", raw)
    return (kind, text)


def _yaml_key(key):
    key = str(key)
    return key if _PLAIN.match(key) and key.lower() not in _YAML_WORDS else json.dumps(key, ensure_ascii=False)


def _container(value):
    return isinstance(value, (dict, list, tuple)) and len(value) > 0


def json_lines(value, indent=0, lead=(), trail=""):
    """Lines of tokens of `value` as indented JSON (keys in their order)."""
    pad = ("", "  " * indent)
    if not _container(value):
        return [[pad, *lead, _scalar(value), ("punct", trail)]]
    is_dict = isinstance(value, dict)
    items = list(value.items()) if is_dict else list(enumerate(value))
    lines = [[pad, *lead, ("punct", "{" if is_dict else "[")]]
    for i, (key, item) in enumerate(items):
        key_lead = [("key", json.dumps(str(key), ensure_ascii=False)), ("punct", ": ")] if is_dict else []
        lines += json_lines(item, indent + 1, key_lead, "," if i < len(items) - 1 else "")
    lines.append([pad, ("punct", ("}" if is_dict else "]") + trail)])
    return lines


def yaml_lines(value, indent=0):
    """Lines of tokens of `value` as block YAML."""
    pad = "  " * indent
    if not _container(value):
        return [[("", pad), _yaml_scalar(value)]]
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _container(item):
                lines.append([("", pad), ("key", _yaml_key(key)), ("punct", ":")])
                lines += yaml_lines(item, indent + (0 if isinstance(item, (list, tuple)) else 1))
            else:
                lines.append([("", pad), ("key", _yaml_key(key)), ("punct", ": "), _yaml_scalar(item)])
        return lines
    for item in value:
        inner = yaml_lines(item, indent + 1)
        inner[0][0] = ("", pad)
        inner[0].insert(1, ("punct", "- "))
        lines += inner
    return lines


def lines_of(value, fmt="json"):
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    return json_lines(value) if fmt == "json" else yaml_lines(value)


def _html_line(tokens):
    return "".join(escape(text) if not kind else f'<span class="s-{kind}">{escape(text)}</span>'
                   for kind, text in tokens if text)


def render(value, fmt="json"):
    """<pre class="structured"> with highlighted tokens (every text escaped)."""
    body = "\n".join(_html_line(line) for line in lines_of(value, fmt))
    return mark_safe(f'<pre class="structured" data-format="{fmt}"><code>{body}</code></pre>')


def render_inline(value):
    """One line of JSON in <code> (for table cells and short values)."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return mark_safe(f'<code class="structured-inline">{escape(text)}</code>')


def diff_rows(before, after, fmt="yaml", context=CONTEXT):
    """[(mark, tokens)] of the line difference: mark " " same, "-" only before, "+" only after,
    "…" for unchanged lines left out. A missing side (None: created or deleted) is empty."""
    old = lines_of(before, fmt) if before is not None else []
    new = lines_of(after, fmt) if after is not None else []
    text = ["".join(t for _, t in line) for line in old], ["".join(t for _, t in line) for line in new]
    rows = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, *text, autojunk=False).get_opcodes():
        if tag == "equal":
            same = [(" ", line) for line in old[i1:i2]]
            if len(same) > 2 * context + 1:
                skipped = len(same) - 2 * context
                same = same[:context] + [("…", [("", f"{skipped} unchanged lines")])] + same[-context:]
            rows += same
            continue
        rows += [("-", line) for line in old[i1:i2]] + [("+", line) for line in new[j1:j2]]
    return rows


ROW_CLASS = {" ": "d-same", "-": "d-del", "+": "d-add", "…": "d-skip"}


def render_diff(before, after, fmt="yaml"):
    """<pre class="structured diff">: one line per row, classed and marked (- before, + after)."""
    rows = diff_rows(before, after, fmt)
    if not rows:
        return mark_safe('<p class="muted">Nothing recorded.</p>')
    # One block per row (no newline between them: inside <pre> it would add an empty line).
    body = "".join(f'<span class="{ROW_CLASS[mark]}"><span class="d-mark" aria-hidden="true">{escape(mark)}</span>'
                     f'{_html_line(line)}</span>' for mark, line in rows)
    changed = sum(1 for mark, _ in rows if mark in "+-")
    return mark_safe(f'<pre class="structured diff" data-format="{fmt}" aria-label="{changed} changed lines">'
                     f'<code>{body}</code></pre>')


def text_diff_rows(text):
    """[(mark, line)] of a unified diff's text (a tool's own --diff output): "+" added, "-" removed,
    "@" a header (---/+++/@@ and "\\ No newline"), " " context."""
    rows = []
    for line in (text or "").splitlines():
        if line.startswith(("---", "+++", "@@", "\\")):
            rows.append(("@", line))
        elif line.startswith(("+", "-")):
            rows.append((line[0], line[1:]))
        else:
            rows.append((" ", line[1:] if line.startswith(" ") else line))
    return rows


TEXT_ROW_CLASS = {**ROW_CLASS, "@": "d-skip"}


def render_text_diff(text):
    """<pre class="structured diff"> of a unified diff's text, every line escaped and classed."""
    rows = text_diff_rows(text)
    if not rows:
        return mark_safe('<p class="muted">No difference.</p>')
    body = "".join(f'<span class="{TEXT_ROW_CLASS[mark]}"><span class="d-mark" aria-hidden="true">'
                   f'{escape(mark if mark != "@" else " ")}</span>{escape(line)}</span>' for mark, line in rows)
    changed = sum(1 for mark, _ in rows if mark in "+-")
    return mark_safe(f'<pre class="structured diff" data-format="diff" aria-label="{changed} changed lines">'
                     f'<code>{body}</code></pre>')
