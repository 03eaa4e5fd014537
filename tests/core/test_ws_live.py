"""Websockets against the real ASGI server (daphne) and Redis channel layer."""
import json

import pytest
from websockets.sync.client import connect

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from tests import factories

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def token_for(user):
    from ops_portal.accounts import services

    return services.create_token(Actor.for_user(user, source="api"), name="ws")[1]


def test_an_idle_socket_stays_open_without_errors(live_web):
    user = factories.user()
    factories.binding(role=Role.VIEWER, user=user, environment=factories.environment("idle"))
    key = token_for(user)
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

