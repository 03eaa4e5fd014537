"""Websockets against the real ASGI server (daphne) and Redis channel layer."""
import json

import pytest
from websockets.sync.client import connect

from ops_portal.accounts.choices import Role
from tests import factories
from tests.helpers import api_token, person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_an_idle_socket_stays_open_without_errors(live_web):
    user = person(factories.environment("idle"), Role.VIEWER)
    key = api_token(user, "ws")[1]
    log_before = len(live_web.tail(100000).splitlines())
    ws_url = live_web.url.replace("http://", "ws://") + "/ws/"
    with connect(ws_url, additional_headers={"Authorization": f"Token {key}"}) as ws:
        assert json.loads(ws.recv(10))["type"] == "hello"
        with pytest.raises(TimeoutError):  # nothing to say, and the server does not hang up
            ws.recv(17)
        ws.send(json.dumps({"action": "ping", "id": "p"}))
        assert json.loads(ws.recv(5)) == {"type": "pong", "id": "p"}
    new_log = "\n".join(live_web.tail(100000).splitlines()[log_before:])
    assert "Traceback" not in new_log and "Timeout reading" not in new_log, new_log

