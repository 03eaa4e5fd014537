"""One error format for the whole API:

    {"error": {"status": 400, "code": "invalid", "message": "...", "fields": {"name": ["..."]}},
     "request_id": "..."}
"""
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from ops_portal.core.errors import StateConflict


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def django_validation_error_fields(exc):
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if key == "__all__" else key): [str(m) for e in errors for m in e.messages]
            for key, errors in exc.error_dict.items()
        }
    return {"non_field_errors": [str(m) for m in exc.messages]}


def _flatten_first(fields):
    for key, value in fields.items():
        if isinstance(value, list) and value:
            first = value[0]
            if isinstance(first, dict):
                return _flatten_first(first)
            return first if key == "non_field_errors" else f"{key}: {first}"
        if isinstance(value, dict):
            return _flatten_first(value)
    return "Invalid input."


def exception_handler(exc, context):
    if isinstance(exc, StateConflict):
        exc = Conflict(" ".join(exc.messages))
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(django_validation_error_fields(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, IntegrityError):
        exc = Conflict("The change conflicts with existing data (a duplicate or a row in use).")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    request = context.get("request")
    body = {"status": response.status_code, "code": "error", "message": ""}
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body.update(code="invalid", fields=detail, message=_flatten_first(detail))
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        body.update(code=codes if isinstance(codes, str) else "error", message=str(exc.detail))
    response.data = {"error": body, "request_id": getattr(request, "request_id", None)}
    return response


@csrf_exempt  # it changes nothing, and a CSRF refusal would answer in HTML
def api_not_found(request, *args, **kwargs):
    """A JSON 404 for /api/ paths no route matches (Django would answer with an HTML page)."""
    if settings.APPEND_SLASH and not request.path_info.endswith("/"):
        try:
            if resolve(request.path_info + "/").func is not api_not_found:
                return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        except Resolver404:
            pass
    body = {"error": {"status": 404, "code": "not_found", "message": "No such API endpoint."},
            "request_id": getattr(request, "request_id", None)}
    return JsonResponse(body, status=404)
