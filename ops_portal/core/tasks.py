import socket
import time

from celery import shared_task

from . import status, streams


@shared_task(name="core.ping", acks_late=False)
def ping(user_id, request_id, environment_id=None, sent=None):
    """Answer a ping over the status stream, proving a worker is live and connected."""
    payload = {
        "kind": "pong",
        "worker": socket.gethostname(),
        "request_id": request_id,
        "sent": sent,
        "answered": time.time(),
    }
    streams.publish(status.user_group(user_id), payload)
    if environment_id is not None:
        streams.publish(status.environment_group(environment_id), {**payload, "kind": "environment-pong"})
    return payload
