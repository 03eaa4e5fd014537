"""API token authentication: `Authorization: Token <key>` or `Bearer <key>`; keys stored hashed."""
import re
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import APIToken, hash_token

_KEY = re.compile(r"^opt_[A-Za-z0-9_-]{20,100}\Z")


def user_for_key(key):
    """The active user owning a valid token key, or raise AuthenticationFailed."""
    if not _KEY.match(key or ""):
        raise exceptions.AuthenticationFailed("Malformed API token.")
    token = APIToken.objects.select_related("user").filter(key_hash=hash_token(key)).first()
    now = timezone.now()
    if token is None or token.revoked is not None:
        raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
    if token.expires is not None and token.expires <= now:
        raise exceptions.AuthenticationFailed("API token has expired.")
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed("User is inactive.")
    if token.last_used is None or now - token.last_used > timedelta(minutes=1):
        APIToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user, token


class TokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Token <key>'.")
        return user_for_key(parts[1])

    def authenticate_header(self, request):
        return "Token"
