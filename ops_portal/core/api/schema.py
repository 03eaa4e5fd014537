"""The OpenAPI description of what every operation may answer besides success.

Every API error has one shape (core/api/errors.py); each operation documents the error statuses it
can give, so clients and the schema-driven fuzz test (tests/web/test_api_fuzz.py) can rely on it.
"""
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    fields = serializers.DictField(required=False, help_text="Field name -> messages (400 only).")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
    request_id = serializers.CharField(allow_null=True)


ERRORS = {
    "400": "Invalid input: unknown query parameters, bad values (see error.fields).",
    "401": "No valid credentials.",
    "403": "Not allowed for this user.",
    "404": "No such object, or not visible to this user.",
    "405": "Method not allowed.",
    "406": "The Accept header asks for a format the API does not serve.",
    "409": "Conflicts with the current state or existing data.",
    "413": "The request body is too large.",
    "415": "Unsupported request content type.",
    "429": "Too many requests.",
}


class PortalAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code, description in ERRORS.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code)
                responses[code]["description"] = description
        return responses


def local_times(result, generator, request, public):
    """DRF writes times as `HH:MM[:SS[.ffffff]]` without an offset, which JSON Schema's "time" format
    (RFC 3339, offset required) refuses: describe them by a pattern instead."""
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "string" and node.get("format") == "time":
                node.pop("format")
                node["pattern"] = r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result)
    return result
