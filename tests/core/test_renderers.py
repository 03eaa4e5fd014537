"""The API renderer writes the same bytes as DRF's JSONRenderer, through orjson."""
import datetime
import decimal
import uuid

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from ops_portal.core.api.renderers import PortalJSONRenderer
from tests import factories

UTC = datetime.UTC
PLUS_TWO = datetime.timezone(datetime.timedelta(hours=2))

SAMPLES = {
    "nested": {"results": [{"id": 1, "name": "web-1", "tags": ["a", "b"], "ok": True, "none": None,
                            "cpu": 12.5, "mem": 0.1, "big": 2**62}], "count": 1, "next": None},
    "aware datetime with microseconds": {"t": datetime.datetime(2026, 12, 3, 12, 0, 1, 123456, tzinfo=UTC)},
    "naive datetime": {"t": datetime.datetime(2026, 12, 3, 12, 0, 1)},
    "offset datetime": {"t": datetime.datetime(2026, 12, 3, 12, 0, tzinfo=PLUS_TWO)},
    "date and time": {"d": datetime.date(2026, 12, 3), "t": datetime.time(8, 30, 0, 500000)},
    "timedelta": {"d": datetime.timedelta(minutes=3, seconds=2)},
    "decimal": {"d": decimal.Decimal("1.50")},
    "uuid": {"u": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    "lazy string": {"s": gettext_lazy("Not found.")},
    "non-ASCII and separators": {"s": "héllo \u2028 line \u2029 para ✓ \"q\" \\ \n"},
    "integer keys": {1: "one", "2": "two"},
    "tuple": {"t": (1, 2, 3)},
    "drf containers": ReturnDict({"a": ReturnList([1, 2], serializer=None)}, serializer=None),
    "integer wider than 64 bits": {"n": 2**70},
    "top-level list": [1, "x", None],
}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_bytes_equal_drfs_renderer(name):
    data = SAMPLES[name]
    assert PortalJSONRenderer().render(data, "application/json") == JSONRenderer().render(data, "application/json")


def test_separators_are_escaped_as_drf_does():
    body = PortalJSONRenderer().render({"s": "a\u2028b\u2029c"}, "application/json")
    assert body == b'{"s":"a\\u2028b\\u2029c"}'


def test_indent_asked_for_is_honoured():
    body = PortalJSONRenderer().render({"a": [1]}, "application/json; indent=2")
    assert body == b'{\n  "a": [\n    1\n  ]\n}'


def test_none_renders_empty():
    assert PortalJSONRenderer().render(None) == b""


def test_the_api_answers_through_it(api, admin_all, env):
    factories.host(env, "web-\u00e9")
    api.force_authenticate(admin_all)
    response = api.get("/api/hosts/?limit=1")
    assert response.status_code == 200
    assert type(response.accepted_renderer) is PortalJSONRenderer
    assert response.content == JSONRenderer().render(response.data, "application/json")
    assert response.json()["results"][0]["name"] == "web-\u00e9"
