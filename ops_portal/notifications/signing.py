"""Webhook signatures: X-OpsPortal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>.

The HMAC key is the channel secret (UTF-8); the message is "<t>." followed by the raw request body.
verify() is what a receiver does (docs/NOTIFICATIONS.md has it in plain Python): recompute the HMAC
over the exact bytes received, compare in constant time, and refuse timestamps outside a tolerance
so a captured request cannot be replayed later.
"""
import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-OpsPortal-Signature"
EVENT_HEADER = "X-OpsPortal-Event"
DELIVERY_HEADER = "X-OpsPortal-Delivery"
DEFAULT_TOLERANCE = 300


def compute(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body`."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={compute(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance=DEFAULT_TOLERANCE, now=None) -> bool:
    """Is `header` a valid, fresh signature of `body` with `secret`?"""
    try:
        parts = dict(item.strip().split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError, AttributeError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    signatures = [value for key, value in (p.strip().split("=", 1) for p in header.split(",")) if key == "v1"]
    expected = compute(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
