"""Factories for channels and deliveries, and a real HTTP receiver for webhooks."""
import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.utils import timezone

from ops_portal.notifications.models import Delivery, NotificationChannel

SECRET = "receiver-shared-secret-0123456789"
_seq = itertools.count(1)


def channel(environment, name=None, *, kind="webhook", url="https://hooks.example.com/ops", events=("job.failed",),
            secret=SECRET, **fields):
    if kind == "email":
        fields.setdefault("emails", ["ops@example.com"])
        url = ""
    return NotificationChannel.objects.create(name=name or f"channel-{next(_seq)}", environment=environment,
                                              kind=kind, url=url, events=list(events), secret=secret, **fields)


def delivery(channel, *, event="job.failed", subject="Job 1 failed", payload=None, **fields):
    fields.setdefault("next_attempt_at", timezone.now())
    return Delivery.objects.create(channel=channel, event=event, environment_name=channel.environment.name,
                                   subject=subject, payload=payload if payload is not None else {"job": 1},
                                   **fields)


def receiver_verifies(secret, headers, body, *, tolerance=300, now=None):
    """What a receiver does with a request: check the signature over the raw body and its freshness."""
    fields = dict(part.split("=", 1) for part in headers["X-OpsPortal-Signature"].split(","))
    timestamp = int(fields["t"])
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


class Receiver:
    """An HTTP server on 127.0.0.1 (ephemeral port) that records requests and answers from a script
    of status codes (200 once the script runs out)."""

    def __init__(self, statuses=(), *, delay=0.0):
        self.requests = []
        self.statuses = list(statuses)
        self.delay = delay
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "time": time.time()})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = json.dumps({"ok": status < 300}).encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self):
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path="/hooks/ops?token=query-token-123"):
        return self.base_url + path

    def wait_for(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return self.requests
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.requests)} requests, not {count}, in {timeout}s")

    def close(self):
        self.server.shutdown()
        self.server.server_close()
