"""Sign-in throttling: after LOGIN_THROTTLE_ATTEMPTS failures for a user name or a client address
within LOGIN_THROTTLE_WINDOW seconds, further attempts are refused until the window passes."""
import hashlib

from django.conf import settings
from django.core.cache import cache


def _keys(username, address):
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:user:{name}", f"login-fail:addr:{address or '-'}"]


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


def clear(username, address):
    cache.delete_many(_keys(username, address))
