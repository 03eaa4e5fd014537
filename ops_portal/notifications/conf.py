"""Tunables, read from settings at call time (tests override them), with the defaults below.

NOTIFICATION_BACKOFF_SECONDS      first retry delay; doubles per attempt        30
NOTIFICATION_BACKOFF_MAX_SECONDS  longest delay between attempts                3600
NOTIFICATION_MAX_ATTEMPTS         attempts before a delivery is marked failed   8
NOTIFICATION_TIMEOUT_SECONDS      webhook/SMTP timeout per attempt              10
NOTIFICATION_CLAIM_SECONDS        how long an attempt holds its delivery        120
NOTIFICATION_RETRY_GRACE_SECONDS  how overdue a delivery is before retry_due    60
                                  enqueues it again
"""
from django.conf import settings

DEFAULTS = {
    "NOTIFICATION_BACKOFF_SECONDS": 30,
    "NOTIFICATION_BACKOFF_MAX_SECONDS": 3600,
    "NOTIFICATION_MAX_ATTEMPTS": 8,
    "NOTIFICATION_TIMEOUT_SECONDS": 10,
    "NOTIFICATION_CLAIM_SECONDS": 120,
    "NOTIFICATION_RETRY_GRACE_SECONDS": 60,
}


def get(name):
    return getattr(settings, name, DEFAULTS[name])


def backoff_seconds(attempts: int) -> float:
    """The delay after the `attempts`-th failed attempt: base * 2^(attempts-1), capped."""
    base = float(get("NOTIFICATION_BACKOFF_SECONDS"))
    cap = float(get("NOTIFICATION_BACKOFF_MAX_SECONDS"))
    return min(base * 2 ** max(attempts - 1, 0), cap)


def max_attempts() -> int:
    return int(get("NOTIFICATION_MAX_ATTEMPTS"))
