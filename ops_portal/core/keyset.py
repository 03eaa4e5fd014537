"""Keyset pages for the large append-only tables (the audit log, job events): a page is the
`limit` rows after (or before) a position in the ordering, found through the index. Nothing is
counted and nothing is skipped, so page 20,000 costs what page 1 costs.

The ordering is one non-null column of the model and the primary key as tie-breaker, in the same
direction (`-time, -pk`). A cursor is an opaque token holding the column's value and the pk of
the row it starts after, and the direction: `n` (the next rows in the ordering) or `p` (the rows
before it, for a "newer" link).
"""
import base64
import binascii
import datetime
import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q

MAX_CURSOR_LENGTH = 400


class InvalidCursor(ValueError):
    """The cursor was not made by this ordering (edited, truncated or from another list)."""


@dataclass
class KeysetPage:
    rows: list
    next_cursor: str | None
    previous_cursor: str | None

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)


def parse_ordering(model, ordering):
    """(field, descending) of an ordering like ["-time", "-pk"]: one non-null concrete column,
    optionally followed by the primary key in the same direction."""
    terms = [str(term) for term in ordering]
    if not terms or len(terms) > 2:
        raise ValueError(f"keyset ordering needs one column and the primary key, not {terms}")
    first = terms[0]
    descending = first.startswith("-")
    name = first.lstrip("-")
    pk_name = model._meta.pk.name
    if len(terms) == 2 and terms[1].lstrip("-") not in ("pk", pk_name) or (
            len(terms) == 2 and terms[1].startswith("-") != descending):
        raise ValueError(f"keyset ordering must end with the primary key in the same direction, not {terms}")
    if name == "pk":
        name = pk_name
    field = model._meta.get_field(name)
    if field.null or not field.concrete or field.is_relation:
        raise ValueError(f"{model.__name__}.{name} cannot order a keyset (nullable, relation or not a column)")
    return field, descending


def _encode(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def make_cursor(field, row, direction):
    """The cursor of a row: a model instance, or a values() dict holding the column and the key."""
    if isinstance(row, dict):
        value, pk = row[field.attname], row[field.model._meta.pk.attname]
    else:
        value, pk = getattr(row, field.attname), row.pk
    payload = json.dumps({"v": _encode(value), "k": pk, "d": direction},
                         separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def read_cursor(field, token):
    """(value, pk, direction) of a cursor, the value as the field's Python type."""
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("Invalid cursor.")
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        value, pk, direction = payload["v"], payload["k"], payload["d"]
        if direction not in ("n", "p") or not isinstance(pk, int) or isinstance(pk, bool) or value is None:
            raise InvalidCursor("Invalid cursor.")
        value = field.to_python(value)
        field.get_prep_value(value)  # out-of-range values fail here, not in the database
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError, ValidationError,
            OverflowError) as exc:
        raise InvalidCursor("Invalid cursor.") from exc
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        raise InvalidCursor("Invalid cursor.")
    if abs(pk) > 2**63 - 1 or (isinstance(value, int) and abs(value) > 2**63 - 1):
        raise InvalidCursor("Invalid cursor.")
    return value, pk, direction


def _after(name, value, pk, descending):
    """Rows strictly after (value, pk) in the ordering. The redundant bound on the column alone
    lets PostgreSQL start the index scan at the position instead of filtering its way there."""
    op, op_eq = ("lt", "lte") if descending else ("gt", "gte")
    return Q(**{f"{name}__{op_eq}": value}) & (Q(**{f"{name}__{op}": value}) | Q(**{name: value, f"pk__{op}": pk}))


def paginate(queryset, ordering, cursor=None, limit=50):
    """One page of `queryset` in `ordering`, after the cursor's position (the first page without
    one). Raises InvalidCursor for a cursor this ordering did not make."""
    field, descending = parse_ordering(queryset.model, ordering)
    name = field.name
    direction_sign = "-" if descending else ""
    forward = [f"{direction_sign}{name}", f"{direction_sign}pk"]
    backward = [term[1:] if term.startswith("-") else f"-{term}" for term in forward]
    if cursor is None:
        rows = list(queryset.order_by(*forward)[:limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return KeysetPage(rows, make_cursor(field, rows[-1], "n") if more else None, None)
    value, pk, direction = read_cursor(field, cursor)
    if direction == "n":
        rows = list(queryset.filter(_after(name, value, pk, descending)).order_by(*forward)[:limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = make_cursor(field, rows[-1], "n") if more else None
        # Something came before: the row the cursor was made from (or its successors' predecessors).
        previous_cursor = make_cursor(field, rows[0], "p") if rows else None
        return KeysetPage(rows, next_cursor, previous_cursor)
    rows = list(queryset.filter(_after(name, value, pk, not descending)).order_by(*backward)[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit][::-1]
    previous_cursor = make_cursor(field, rows[0], "p") if more else None
    next_cursor = make_cursor(field, rows[-1], "n") if rows else None
    return KeysetPage(rows, next_cursor, previous_cursor)
