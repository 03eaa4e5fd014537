"""A shared Redis client for the deployment's own keys (heartbeats, leases, counters)."""
from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def _client(url):
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def client():
    return _client(settings.REDIS_URL)


def key(*parts):
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])
