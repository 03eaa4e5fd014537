"""The API's JSON renderer: DRF's JSONRenderer with orjson doing the encoding.

A page of 1,000 programs is 1.6 MB of JSON; the standard library's encoder spent a good part of
such a request writing it. The bytes are the same as DRF's renderer writes with the portal's
settings (compact separators, UTF-8 rather than \\u escapes, U+2028 and U+2029 escaped): the types
orjson would write its own way (datetimes, whose milliseconds and "Z" DRF's encoder shapes) are
handed to DRF's encoder, and whatever orjson refuses (an integer wider than 64 bits, say) or a
request for indented output goes through DRF's renderer unchanged.
"""

from __future__ import annotations

import orjson
from rest_framework.renderers import JSONRenderer

# Datetimes, dates and times go to `default` (DRF's encoder) so they come out as DRF writes them.
OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
LINE_SEPARATOR = "\u2028".encode()
PARAGRAPH_SEPARATOR = "\u2029".encode()


class PortalJSONRenderer(JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if self.get_indent(accepted_media_type, renderer_context or {}) is not None or not self.compact:
            return super().render(data, accepted_media_type, renderer_context)
        try:
            body = orjson.dumps(data, default=self.encoder_class().default, option=OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            return super().render(data, accepted_media_type, renderer_context)
        # A strict JavaScript subset, as DRF's renderer writes it.
        if LINE_SEPARATOR in body:
            body = body.replace(LINE_SEPARATOR, b"\\u2028")
        if PARAGRAPH_SEPARATOR in body:
            body = body.replace(PARAGRAPH_SEPARATOR, b"\\u2029")
        return body
