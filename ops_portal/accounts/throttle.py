"""Sign-in throttling, one for every way in: after LOGIN_THROTTLE_ATTEMPTS failures for a user name or
a client address within LOGIN_THROTTLE_WINDOW seconds, further attempts are refused until the window
passes.

The throttle sits in the authentication backend, so every caller of django.contrib.auth.authenticate
(the portal's sign-in page, the admin's, anything added later) is held by it; failures are counted
and audited from the user_login_failed signal (accounts.signals), which Django sends for every
refused attempt, throttled ones included.
"""
import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

from ops_portal.core.proxy import client_address

THROTTLED = "opsportal.login_throttled"  # request.META flag: this attempt was refused unchecked


def _keys(username, address):
    name = hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:32]
    keys = [f"login-fail:user:{name}"]
    if address:
        keys.append(f"login-fail:addr:{address}")
    return keys


def is_locked(username, address):
    counts = cache.get_many(_keys(username, address))
    return any(count >= settings.LOGIN_THROTTLE_ATTEMPTS for count in counts.values())


def note_failure(username, address):
    for key in _keys(username, address):
        if cache.add(key, 1, timeout=settings.LOGIN_THROTTLE_WINDOW):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.LOGIN_THROTTLE_WINDOW)


def clear_user(username):
    """A successful sign-in clears its user name's count (not its address's: one good account must
    not reset the count of guesses against others from the same place)."""
    cache.delete_many(_keys(username, None))


def was_throttled(request):
    return request is not None and bool(request.META.get(THROTTLED))


class ThrottledModelBackend(ModelBackend):
    """Django's model backend behind the sign-in throttle."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        address = client_address(request) if request is not None else None
        if is_locked(str(username or ""), address):
            if request is not None:
                request.META[THROTTLED] = True
            # Ends authenticate() at once; Django then sends user_login_failed (audited, see signals).
            raise PermissionDenied("too many failed sign-ins")
        return super().authenticate(request, username=username, password=password, **kwargs)

    @staticmethod
    def _username_field():
        return get_user_model().USERNAME_FIELD
