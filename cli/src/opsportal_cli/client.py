"""The portal's REST API over HTTP, its answers turned into data and its errors into plain words."""
import httpx

from . import __version__
from .errors import Conflict, Forbidden, Invalid, NotFound, PortalFailed, Unauthorized, Unreachable

PAGE = 1000  # the API's largest page


def _describe(exc):
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    if "Connection refused" in text:
        return "connection refused"
    return text


def _error_text(response):
    try:
        body = response.json()
    except ValueError:
        return "", {}, ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", {}, ""
    return str(error.get("message") or ""), error.get("fields") or {}, str(body.get("request_id") or "")


def error_for(response, config_source=""):
    """The CLIError for an HTTP error answer."""
    message, fields, request_id = _error_text(response)
    status = response.status_code
    if status == 401:
        hint = f" (token from {config_source})" if config_source else ""
        return Unauthorized(f"the portal refused the API token{hint}: {message or 'not signed in'}")
    if status == 403:
        return Forbidden(f"not allowed: {message or 'you may not do this'}")
    if status == 404:
        return NotFound(f"not found: {message or response.request.url.path} (or outside your environments)")
    if status == 400:
        details = "; ".join(f"{name}: {' '.join(map(str, errs)) if isinstance(errs, list) else errs}"
                            for name, errs in fields.items()) if isinstance(fields, dict) else ""
        return Invalid(f"invalid input: {details or message or 'the portal refused the request'}")
    if status == 409:
        return Conflict(f"conflict: {message or 'the object is not in a state that allows this'}")
    if status == 429:
        return PortalFailed(f"the portal asks to slow down (HTTP 429): {message}")
    where = f", request id {request_id}" if request_id else ""
    return PortalFailed(f"the portal failed to answer (HTTP {status}{where}){': ' + message if message else ''}")


class Client:
    def __init__(self, config, transport=None):
        self.config = config
        self.http = httpx.Client(
            base_url=config.url, timeout=config.timeout, transport=transport, follow_redirects=False,
            verify=config.ca_bundle or True,
            headers={"Authorization": f"Token {config.token}", "Accept": "application/json",
                     "User-Agent": f"opsportal-cli/{__version__}"})

    def close(self):
        self.http.close()

    def request(self, method, path, *, params=None, json=None):
        try:
            response = self.http.request(method, path, params=params, json=json)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the portal at {self.config.url}: {_describe(exc)}") from None
        if response.status_code >= 400:
            raise error_for(response, self.config.source)
        if 300 <= response.status_code < 400:
            raise PortalFailed(f"the portal answered with a redirect to {response.headers.get('location')}: "
                               f"is PORTAL_URL ({self.config.url}) the portal's address?")
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                return response.json()
            except ValueError:
                raise PortalFailed("the portal's answer is not valid JSON.") from None
        if path.startswith("/api/") and "text/html" in response.headers.get("content-type", ""):
            raise PortalFailed(f"{self.config.url} answered with a web page, not the API: is it the portal?")
        return response.text

    def get(self, path, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path, body=None):
        return self.request("POST", path, json=body if body is not None else {})

    def list(self, path, params=None, limit=50):
        """Rows of a paginated list: at most `limit` (0 or None: all of them)."""
        rows, offset = [], 0
        params = {k: v for k, v in (params or {}).items() if v is not None}
        while True:
            size = PAGE if not limit else min(PAGE, limit - len(rows))
            page = self.request("GET", path, params={**params, "limit": size, "offset": offset})
            if not isinstance(page, dict) or "results" not in page:
                raise PortalFailed(f"{path} did not answer with a list.")
            rows.extend(page["results"])
            offset += len(page["results"])
            if not page["results"] or not page.get("next") or (limit and len(rows) >= limit):
                return rows

    def stream_text(self, path):
        """Yield a text answer in pieces (a job's whole output)."""
        try:
            with self.http.stream("GET", path, headers={"Accept": "text/plain"}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response, self.config.source)
                yield from response.iter_text()
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the portal at {self.config.url}: {_describe(exc)}") from None
