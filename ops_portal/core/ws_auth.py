"""Websocket authentication: the session cookie (browsers) or an Authorization: Token header
(API clients, benchmarks). A malformed or revoked token leaves the socket anonymous, so the
consumer refuses it."""
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed

from ops_portal.accounts.authentication import user_for_key


@database_sync_to_async
def _user_for(key):
    try:
        return user_for_key(key)[0]
    except AuthenticationFailed:
        return None


class TokenHeaderMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        auth = headers.get(b"authorization", b"").decode("latin-1").split()
        if len(auth) == 2 and auth[0].lower() in ("token", "bearer"):
            user = await _user_for(auth[1])
            scope = dict(scope, user=user or AnonymousUser())
            # Header auth decides: the session is not consulted for token clients.
            return await self.inner(scope, receive, send)
        return await self.inner(scope, receive, send)


def PortalAuthMiddlewareStack(inner):  # noqa: N802  (mirrors channels' naming)
    return AuthMiddlewareStack(TokenHeaderMiddleware(inner))
