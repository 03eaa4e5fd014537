"""Helpers to open websockets against the ASGI app in-process (channels' communicator)."""
import asyncio

from channels.testing import WebsocketCommunicator
from django.test import Client

from ops_portal.asgi import application


def session_cookie_for(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def communicator(cookie=None, token=None, *, origin="http://localhost", host="localhost"):
    """A websocket client of the ASGI app; origin=None sends no Origin header (not a browser)."""
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
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


async def receive_close(comm, timeout=5):
    """Wait for the server to close the socket; no events may arrive before that. Returns the code."""
    while True:
        output = await comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            return output.get("code")
        assert '"type":"events"' not in output.get("text", "").replace(" ", ""), f"events before close: {output}"
