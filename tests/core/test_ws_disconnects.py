"""Ordinary websocket ends leave no traceback in the web log (daphne + Redis channel layer, for real).

A browser closes its socket when a page is left (1001), a client closes normally (1000), a laptop
sleeps or a proxy drops the connection (no close frame at all), sometimes while events are being
sent to it. None of that is an error of the portal.
"""
import json
import socket
import threading
import time

import pytest
from websockets.sync.client import connect

from ops_portal.accounts.choices import Role
from ops_portal.core import status, streams
from tests import factories
from tests.helpers import api_token, person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live,
              pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")]


def _open(live_web, key):
    ws = connect(live_web.url.replace("http://", "ws://") + "/ws/",
                 additional_headers={"Authorization": f"Token {key}"})
    assert json.loads(ws.recv(10))["type"] == "hello"
    return ws


def _subscribe(ws, *streams_):
    for i, name in enumerate(streams_):
        ws.send(json.dumps({"action": "subscribe", "id": f"s{i}", "stream": name, "params": {}}))
        assert json.loads(ws.recv(5))["type"] == "subscribed"


def _abort(ws):
    """Drop the TCP connection without a close frame (a sleeping laptop, a proxy that gives up)."""
    sock = ws.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    sock.close()


def _log_after(live_web, start):
    return "\n".join(live_web.tail(100000).splitlines()[start:])


def test_normal_closes_aborts_and_drops_under_traffic_log_no_traceback(live_web):
    user = person(factories.environment("ends"), Role.VIEWER)
    key = api_token(user, "ws")[1]
    start = len(live_web.tail(100000).splitlines())

    ws = _open(live_web, key)  # closes normally, subscribed
    _subscribe(ws, "status", "jobs", "approvals", "alerts")
    ws.close()

    ws = _open(live_web, key)  # a page left: 1001 going away
    _subscribe(ws, "status")
    ws.close(code=1001)

    ws = _open(live_web, key)  # aborted without a close frame
    _subscribe(ws, "status", "jobs")
    _abort(ws)

    ws = _open(live_web, key)  # idle past the channel layer's 5 s pop, then aborted
    _subscribe(ws, "status")
    time.sleep(7)
    _abort(ws)

    # Dropped while events stream to it: the server's sends meet a closed connection.
    ws = _open(live_web, key)
    _subscribe(ws, "status")
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            streams.publish_many(status.user_group(user.pk), [{"message": "x" * 200}] * 50)
            time.sleep(0.005)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        ws.recv(5)
        _abort(ws)
        time.sleep(1)
    finally:
        stop.set()
        flooder.join()

    ws = _open(live_web, key)  # the server still serves
    ws.send(json.dumps({"action": "ping", "id": "p"}))
    assert json.loads(ws.recv(5)) == {"type": "pong", "id": "p"}
    ws.close()
    time.sleep(2)  # let the server notice every end and log what it would
    log = _log_after(live_web, start)
    assert "Traceback" not in log and "Timeout reading" not in log and "ERROR" not in log, log
