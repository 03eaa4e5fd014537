"""Parsers that refuse bodies above DATA_UPLOAD_MAX_MEMORY_SIZE before reading them whole."""
import io

from django.conf import settings
from rest_framework import parsers

from .errors import PayloadTooLarge


def read_limited(stream, limit):
    data = stream.read(limit + 1) if stream is not None else b""
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    return data


class LimitedJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return super().parse(io.BytesIO(read_limited(stream, limit)), media_type, parser_context)
