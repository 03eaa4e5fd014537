"""Websocket authentication and origin checks.

Credentials: the session cookie (browsers) or an `Authorization: Token` header (API clients,
benchmarks). A malformed or revoked token leaves the socket anonymous, so the consumer refuses it.
`scope["credential"]` records which one the socket rests on, so the consumer can check later
that it still holds (token not revoked or expired, session not signed out, user still active).

Origins: a browser always sends `Origin`; it must be the portal's own origin (scheme, host and
port as the client reached it, the host one of ALLOWED_HOSTS) or one of CSRF_TRUSTED_ORIGINS. A
client that sends no Origin is not a browser page: it is let in only with a token header, never
on a cookie alone.
"""
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.http.request import is_same_domain, split_domain_port, validate_host
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed

from ops_portal.accounts.authentication import user_for_key
from ops_portal.accounts.models import APIToken

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _headers(scope):
    headers = {}
    for name, value in scope.get("headers", []):
        headers.setdefault(name.lower(), value.decode("latin-1"))
    return headers


def _token_key(headers):
    parts = headers.get(b"authorization", "").split()
    if len(parts) == 2 and parts[0].lower() in ("token", "bearer"):
        return parts[1]
    return None


@database_sync_to_async
def _user_for(key):
    try:
        return user_for_key(key)
    except AuthenticationFailed:
        return None, None


class TokenHeaderMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        key = _token_key(_headers(scope))
        if key is not None:
            user, token = await _user_for(key)
            # Header auth decides: the session is not consulted for token clients.
            scope = dict(scope, user=user or AnonymousUser(),
                         credential=("token", token.pk) if token is not None else None)
            return await self.inner(scope, receive, send)
        session = scope.get("session")
        key = getattr(session, "session_key", None)
        return await self.inner(dict(scope, credential=("session", key) if key else None), receive, send)


def PortalAuthMiddlewareStack(inner):  # noqa: N802  (mirrors channels' naming)
    return AuthMiddlewareStack(TokenHeaderMiddleware(inner))


def current_user(credential, user_pk):
    """The user the socket's credential stands for now, or None: the token was revoked or expired,
    the session signed out or its password changed, the user deactivated or removed (sync)."""
    if credential is None:
        return None
    kind, ref = credential
    if kind == "token":
        token = APIToken.objects.select_related("user").filter(pk=ref, user_id=user_pk).first()
        if token is None or token.revoked is not None or not token.user.is_active:
            return None
        if token.expires is not None and token.expires <= timezone.now():
            return None
        return token.user
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=ref)
    user = get_user(SimpleNamespace(session=store))  # the same checks as every HTTP request
    if not user.is_authenticated or user.pk != user_pk or not user.is_active:
        return None
    return user


# Origins -------------------------------------------------------------------------------------

def _origin(value):
    """(scheme, host, port) of an origin or URL, or None when it is not one."""
    try:
        parts = urlsplit(value)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return parts.scheme, parts.hostname.lower(), port


def _allowed_hosts():
    hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]  # as Django's HttpRequest.get_host()
    return hosts


def _secure(scope, headers):
    if scope.get("scheme") in ("wss", "https"):
        return True
    header = settings.SECURE_PROXY_SSL_HEADER  # trusted exactly as Django's request.is_secure()
    if header:
        name, value = header
        name = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        return headers.get(name, "").split(",")[0].strip() == value
    return False


def origin_allowed(scope):
    """True when the handshake may proceed (see the module docstring)."""
    headers = _headers(scope)
    host = headers.get(b"host", "")
    origin = headers.get(b"origin")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    if origin is None:
        return _token_key(headers) is not None
    claimed = _origin(origin)
    if claimed is None:
        return False
    own = _origin(f"{'https' if _secure(scope, headers) else 'http'}://{host}")
    if claimed == own:
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        pattern = urlsplit(trusted)
        if pattern.scheme != claimed[0] or not pattern.hostname:
            continue
        port = pattern.port or _DEFAULT_PORTS.get(pattern.scheme)
        if port == claimed[2] and is_same_domain(claimed[1], pattern.hostname.replace("*", "", 1)):
            return True
    return False


class OriginValidator:
    """Refuse the handshake (403) unless origin_allowed(scope)."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.inner(scope, receive, send)
