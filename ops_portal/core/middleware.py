"""Request ids, security headers and request metrics."""
import re
import time
import uuid

from django.http import HttpResponseBadRequest, JsonResponse

from ops_portal.core import metrics
from ops_portal.core.logging import request_id_var

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}\Z")


class RequestIdMiddleware:
    """Tag each request with an id (a valid X-Request-ID from the caller, or a new one)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class SecurityHeadersMiddleware:
    """A strict Content-Security-Policy: every script and style is served by the portal itself."""

    POLICY = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; font-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", self.POLICY)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class MetricsMiddleware:
    """Count requests and their duration by method and status class for /metrics."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        metrics.observe_request(request.method, response.status_code, time.perf_counter() - started)
        return response


class RejectNulMiddleware:
    """A 400 for NUL characters in the path or query string: no column can store them (PostgreSQL
    refuses them in text), so no view should have to think about them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        bad = sorted({key.replace("\x00", "\\x00") for key, values in request.GET.lists()
                      if "\x00" in key or any("\x00" in v for v in values)})
        if bad or "\x00" in request.path:
            message = "Null characters are not allowed in the address."
            if request.path.startswith("/api/"):
                error = {"status": 400, "code": "invalid", "message": message}
                if bad:
                    error["fields"] = {name: ["Null characters are not allowed."] for name in bad}
                return JsonResponse({"error": error, "request_id": getattr(request, "request_id", None)}, status=400)
            return HttpResponseBadRequest(message + "\n", content_type="text/plain")
        return self.get_response(request)
