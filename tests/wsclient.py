"""Helpers to open websockets against the ASGI app in-process (channels' communicator)."""
import asyncio

from channels.testing import WebsocketCommunicator
from django.test import Client

from ops_portal.asgi import application


def session_cookie_for(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def communicator(cookie=None, token=None):
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    return WebsocketCommunicator(application, "/ws/", headers=headers)


async def receive_until(comm, predicate, timeout=10):
    """Read messages until predicate(message) is true; return all messages read."""
    seen = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"no matching message within {timeout}s; got {seen}")
        message = await comm.receive_json_from(timeout=remaining)
        seen.append(message)
        if predicate(message):
            return seen
