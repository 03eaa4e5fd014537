"""Answers as a table for people, or JSON / YAML for scripts (exactly the API's objects)."""
import json

import yaml

FORMATS = ("table", "json", "yaml")
MAX_CELL = 60


def cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def table(rows, columns):
    """Rows (dicts) as aligned columns under an upper-case header."""
    if not rows:
        return "(none)\n"
    columns = [c for c in columns if any(c in row for row in rows)] or sorted(rows[0])
    grid = [[c.upper() for c in columns]] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return "".join("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() + "\n"
                   for line in grid)


def details(obj):
    """One object as `key: value` lines (nested values as compact JSON)."""
    width = max((len(k) for k in obj), default=0)
    lines = []
    for key, value in obj.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{key}:")
            lines.extend("  - " + json.dumps(v, separators=(", ", ": "), ensure_ascii=False, default=str)
                         for v in value)
            continue
        if isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False, default=str)
        else:
            text = "" if value is None else str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines) + "\n"


def render(data, fmt, columns=()):
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if isinstance(data, list):
        return table(data, columns)
    if isinstance(data, dict):
        return details(data)
    return f"{data}\n"
