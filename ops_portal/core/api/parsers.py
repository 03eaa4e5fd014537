"""The API's JSON parser: bodies above DATA_UPLOAD_MAX_MEMORY_SIZE are refused before they are read
whole, and values no column can hold are refused before any serializer sees them: NUL characters
in strings or keys (PostgreSQL text and jsonb refuse them), numbers that are not finite, integers
beyond 64 bits and nesting deeper than MAX_DEPTH."""
import io
import math

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .errors import PayloadTooLarge

MAX_DEPTH = 64
BIGINT_MAX = 2**63 - 1


def read_limited(stream, limit):
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return data


def check_value(value):
    """Raise ParseError when a parsed JSON document holds something no column can store."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        if isinstance(item, str):
            if "\x00" in item:
                raise ParseError("Null characters are not allowed in strings.")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if abs(item) > BIGINT_MAX:
                raise ParseError("Integers must fit in 64 bits.")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ParseError("Numbers must be finite.")
        elif isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise ParseError("Null characters are not allowed in keys.")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return value


class LimitedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = io.BytesIO(read_limited(stream, limit))
        try:
            data = super().parse(body, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
        return check_value(data)
