"""The live path end to end: API -> Redis -> a real Celery worker -> Redis -> websocket."""
import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from ops_portal.accounts.choices import Role
from tests import factories
from tests.helpers import person
from tests.wsclient import communicator, receive_until, session_cookie_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio, pytest.mark.live]


async def test_an_event_sent_from_a_celery_task_reaches_the_subscribed_client(live_worker):
    @sync_to_async
    def setup():
        environment = factories.environment("alpha")
        user = person(environment, Role.VIEWER)
        return user, session_cookie_for(user)

    user, cookie = await setup()
    comm = communicator(cookie)
    assert (await comm.connect())[0]
    await comm.receive_json_from()
    await comm.send_json_to({"action": "subscribe", "id": "mine", "stream": "status"})
    await comm.send_json_to({"action": "subscribe", "id": "env", "stream": "status",
                             "params": {"environment": "alpha"}})
    await receive_until(comm, lambda m: m.get("id") == "env" and m["type"] == "subscribed")

    @sync_to_async
    def ping():
        client = APIClient()
        client.force_authenticate(user)
        return client.post("/api/status/ping/", {"environment": "alpha"}, format="json")

    response = await ping()
    assert response.status_code == 202
    request_id = response.json()["request_id"]
    received = {}

    def both_arrived(message):
        if message["type"] == "events":
            received.setdefault(message["id"], []).extend(message["items"])
        return {"mine", "env"} <= set(received)

    await receive_until(comm, both_arrived, timeout=20)
    assert [item["kind"] for item in received["mine"]] == ["pong"]
    assert [item["kind"] for item in received["env"]] == ["environment-pong"]
    for item in received["mine"] + received["env"]:
        assert item["request_id"] == request_id
        assert item["worker"] and item["answered"] >= item["sent"]
    await comm.disconnect()


async def test_ping_for_an_environment_the_user_cannot_see_is_400(live_worker):
    @sync_to_async
    def call():
        factories.environment("hidden")
        client = APIClient()
        client.force_authenticate(factories.user())
        return client.post("/api/status/ping/", {"environment": "hidden"}, format="json")

    response = await call()
    assert response.status_code == 400
    assert "environment" in response.json()["error"]["fields"]
