#!/srv/portal/venv/bin/python
"""Container healthcheck of the portal's image: `portal-probe web|worker|beat|watcher` exits 0 when healthy.

The same verdicts as `manage.py healthcheck` without loading Django (a probe every few seconds in
four containers must cost little on a small machine):

web      GET /readyz?check=database,redis on this container's daphne answers 200 (the database and
         Redis answer through the portal itself);
worker   this container's worker has a current heartbeat in Redis (`worker@<hostname>`);
watcher  the same for the container watcher;
beat     a beat has a current heartbeat.
"""
import os
import socket
import sys
import urllib.error
import urllib.request

import redis


def _host_header():
    """A name the portal answers to (ALLOWED_HOSTS), so its host check lets the probe through."""
    for name in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        name = name.strip().lstrip(".")
        if name and name != "*":
            return name
    return "localhost"


def web(port):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz?check=database,redis",
                                      headers={"Host": _host_header()})
    try:
        with urllib.request.urlopen(request, timeout=8) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def heartbeat(kind):
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                                  socket_connect_timeout=3, socket_timeout=5)
    prefix = f"{os.environ.get('REDIS_PREFIX') or 'opsportal'}:heartbeat:{kind}:"
    try:
        if kind == "beat":
            return any(True for _ in client.scan_iter(match=prefix + "*", count=500))
        return bool(client.exists(f"{prefix}{kind}@{socket.gethostname()}"))
    except redis.RedisError:
        return False


def main(argv):
    if len(argv) != 2 or argv[1] not in ("web", "worker", "beat", "watcher"):
        sys.stderr.write("usage: portal-probe web|worker|beat|watcher\n")
        return 2
    kind = argv[1]
    healthy = web(os.environ.get("PORTAL_WEB_PORT", "8000")) if kind == "web" else heartbeat(kind)
    sys.stdout.write("healthy\n" if healthy else "unhealthy\n")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
