"""Open websockets lose what their user loses: revoked tokens, deactivated users, signed-out
sessions and removed role bindings end sockets or subscriptions at once, and a change that
bypasses the announcements is caught before the next events go out. Origins are checked by
scheme, host and port."""
import pytest
from asgiref.sync import sync_to_async
from django.test import Client, override_settings
from django.utils import timezone

from ops_portal.accounts import services
from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import APIToken
from ops_portal.core import consumers, status, streams
from tests import factories
from tests.helpers import act, api_token
from tests.wsclient import communicator, receive_close, receive_until, session_cookie_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
REVOKED = 4401


@sync_to_async
def viewer(env_name):
    environment = factories.environment(env_name)
    user = factories.user()
    binding = factories.binding(role=Role.VIEWER, user=user, environment=environment)
    return user, environment, binding


token_for = sync_to_async(api_token)


def admin_actor():
    admin = factories.user(is_superuser=True)
    return act(admin)


async def opened(comm):
    connected, code = await comm.connect()
    assert connected, code
    assert (await comm.receive_json_from())["type"] == "hello"
    return comm


async def subscribed(comm, sub_id, params=None):
    await comm.send_json_to({"action": "subscribe", "id": sub_id, "stream": "status", "params": params or {}})
    answer = await comm.receive_json_from()
    assert answer["type"] == "subscribed", answer
    return answer


async def publish(group, payload):
    await sync_to_async(streams.publish)(group, payload)


async def delivered(comm, text):
    messages = await receive_until(comm, lambda m: m["type"] == "events")
    assert messages[-1]["items"] == [{"message": text}]


def delete_row_quietly(obj):
    """DELETE without Django's signals (as a cleanup script in SQL would)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {obj._meta.db_table} WHERE id = %s", [obj.pk])


@pytest.fixture
def no_announcements(monkeypatch):
    """Changes that bypass accounts.authority (a lost message, a raw UPDATE): only the consumer's
    own re-check before events can catch them; make it due at once."""
    monkeypatch.setattr(consumers, "AUTH_RECHECK_SECONDS", 0)


# Revoked token --------------------------------------------------------------------------------

async def test_revoking_a_token_closes_its_open_socket():
    user, environment, _ = await viewer("rt")
    token, key = await token_for(user)
    comm = await opened(communicator(token=key))
    await subscribed(comm, "s")
    await publish(status.user_group(user.pk), {"message": "before"})
    await delivered(comm, "before")
    await sync_to_async(services.revoke_token)(act(user), token)
    assert await receive_close(comm) == REVOKED
    await publish(status.user_group(user.pk), {"message": "after"})
    assert await comm.receive_nothing(0.3)


async def test_a_token_revoked_behind_the_announcements_gets_no_more_events(no_announcements):
    user, _, _ = await viewer("rt2")
    token, key = await token_for(user)
    comm = await opened(communicator(token=key))
    await subscribed(comm, "s")
    await sync_to_async(APIToken.objects.filter(pk=token.pk).update)(revoked=timezone.now())
    await publish(status.user_group(user.pk), {"message": "secret"})
    assert await receive_close(comm) == REVOKED


async def test_a_revoked_token_cannot_subscribe_again():
    user, _, _ = await viewer("rt3")
    token, key = await token_for(user)
    comm = await opened(communicator(token=key))
    await sync_to_async(APIToken.objects.filter(pk=token.pk).update)(revoked=timezone.now())  # no announcement
    await comm.send_json_to({"action": "subscribe", "id": "late", "stream": "status"})
    assert await receive_close(comm) == REVOKED


async def test_an_expired_token_cannot_subscribe_again():
    user, _, _ = await viewer("rt4")
    token, key = await token_for(user)
    comm = await opened(communicator(token=key))
    await sync_to_async(APIToken.objects.filter(pk=token.pk).update)(expires=timezone.now())
    await comm.send_json_to({"action": "subscribe", "id": "late", "stream": "status"})
    assert await receive_close(comm) == REVOKED


async def test_revoking_another_token_leaves_this_socket_open():
    user, _, _ = await viewer("rt5")
    _, key = await token_for(user)
    other, _ = await token_for(user)
    comm = await opened(communicator(token=key))
    await subscribed(comm, "s")
    await sync_to_async(services.revoke_token)(act(user), other)
    await publish(status.user_group(user.pk), {"message": "still here"})
    await delivered(comm, "still here")
    await comm.disconnect()


# Deactivated user -----------------------------------------------------------------------------

async def test_deactivating_a_user_closes_their_sockets():
    user, _, _ = await viewer("du")
    _, key = await token_for(user)
    cookie = await sync_to_async(session_cookie_for)(user)
    by_token = await opened(communicator(token=key))
    by_cookie = await opened(communicator(cookie))
    await subscribed(by_token, "s")
    await sync_to_async(lambda: services.update_user(admin_actor(), user, is_active=False))()
    assert await receive_close(by_token) == REVOKED
    assert await receive_close(by_cookie) == REVOKED


async def test_a_user_deactivated_behind_the_announcements_gets_no_more_events(no_announcements):
    user, _, _ = await viewer("du2")
    cookie = await sync_to_async(session_cookie_for)(user)
    comm = await opened(communicator(cookie))
    await subscribed(comm, "s")
    await sync_to_async(type(user).objects.filter(pk=user.pk).update)(is_active=False)
    await publish(status.user_group(user.pk), {"message": "secret"})
    assert await receive_close(comm) == REVOKED


# Signed-out session ---------------------------------------------------------------------------

async def test_signing_out_closes_that_sessions_sockets_only():
    user, _, _ = await viewer("so")

    @sync_to_async
    def two_sessions():
        first, second = Client(), Client()
        first.force_login(user)
        second.force_login(user)
        return first, second

    first, second = await two_sessions()
    signed_out = await opened(communicator(f"sessionid={first.cookies['sessionid'].value}"))
    other = await opened(communicator(f"sessionid={second.cookies['sessionid'].value}"))
    await subscribed(signed_out, "s")
    await subscribed(other, "s")
    response = await sync_to_async(first.post)("/logout/")
    assert response.status_code in (200, 302)
    assert await receive_close(signed_out) == REVOKED
    await publish(status.user_group(user.pk), {"message": "for the other session"})
    await delivered(other, "for the other session")
    await other.disconnect()


async def test_a_session_gone_behind_the_announcements_cannot_subscribe():
    user, _, _ = await viewer("so2")
    client = Client()
    await sync_to_async(client.force_login)(user)
    comm = await opened(communicator(f"sessionid={client.cookies['sessionid'].value}"))
    await sync_to_async(client.session.delete)()  # the session store loses it (expiry, cleanup)
    await comm.send_json_to({"action": "subscribe", "id": "late", "stream": "status"})
    assert await receive_close(comm) == REVOKED


# Role bindings --------------------------------------------------------------------------------

async def test_deleting_a_binding_ends_the_subscriptions_it_allowed():
    user, environment, binding = await viewer("db")
    comm = await opened(communicator(await sync_to_async(session_cookie_for)(user)))
    await subscribed(comm, "env", {"environment": environment.name})
    await subscribed(comm, "mine")
    await sync_to_async(lambda: services.delete_binding(admin_actor(), binding))()
    ended = await comm.receive_json_from(5)
    assert (ended["type"], ended["id"], ended["code"]) == ("error", "env", "forbidden")
    await publish(status.environment_group(environment.pk), {"message": "secret"})
    await publish(status.user_group(user.pk), {"message": "personal"})
    await delivered(comm, "personal")  # the socket and the personal stream stay
    await comm.send_json_to({"action": "subscribe", "id": "again", "stream": "status",
                             "params": {"environment": environment.name}})
    assert (await comm.receive_json_from())["code"] == "forbidden"
    await comm.disconnect()


async def test_leaving_a_team_ends_the_subscriptions_the_team_allowed():
    @sync_to_async
    def team_viewer():
        environment = factories.environment("tm")
        user = factories.user()
        team = factories.team(members=[user])
        factories.binding(role=Role.VIEWER, team=team, environment=environment)
        return user, environment, team

    user, environment, team = await team_viewer()
    comm = await opened(communicator(await sync_to_async(session_cookie_for)(user)))
    await subscribed(comm, "env", {"environment": environment.name})
    await sync_to_async(lambda: services.update_team(admin_actor(), team, members=[]))()
    ended = await comm.receive_json_from(5)
    assert (ended["id"], ended["code"]) == ("env", "forbidden")
    await publish(status.environment_group(environment.pk), {"message": "secret"})
    assert await comm.receive_nothing(0.5)
    await comm.disconnect()


async def test_a_binding_removed_behind_the_announcements_gets_no_more_events(no_announcements):
    user, environment, binding = await viewer("db2")
    comm = await opened(communicator(await sync_to_async(session_cookie_for)(user)))
    await subscribed(comm, "env", {"environment": environment.name})
    await sync_to_async(delete_row_quietly)(binding)
    await publish(status.environment_group(environment.pk), {"message": "secret"})
    ended = await comm.receive_json_from(5)
    assert (ended["type"], ended["id"], ended["code"]) == ("error", "env", "forbidden")
    assert await comm.receive_nothing(0.5)
    await comm.disconnect()


# Origins --------------------------------------------------------------------------------------

PORTAL = override_settings(ALLOWED_HOSTS=["portal.example"], CSRF_TRUSTED_ORIGINS=["https://ops.example.com"])


@pytest.mark.parametrize("origin", [
    "http://portal.example:8443",   # another port
    "https://portal.example:8000",  # another scheme
    "http://evil.example:8000",     # another host
    "null",
    "http://portal.example:8000/path",
])
async def test_a_foreign_origin_is_refused(origin):
    user, _, _ = await viewer("o1")
    cookie = await sync_to_async(session_cookie_for)(user)
    with PORTAL:
        comm = communicator(cookie, origin=origin, host="portal.example:8000")
        connected, _ = await comm.connect()
    assert not connected


@pytest.mark.parametrize("origin,host", [
    ("http://portal.example:8000", "portal.example:8000"),
    ("http://portal.example", "portal.example"),
    ("http://portal.example:80", "portal.example"),
    ("https://ops.example.com", "portal.example:8000"),  # a trusted origin (a proxy's public name)
])
async def test_the_portals_own_origin_is_accepted(origin, host):
    user, _, _ = await viewer("o2")
    cookie = await sync_to_async(session_cookie_for)(user)
    with PORTAL:
        await opened(communicator(cookie, origin=origin, host=host))


async def test_a_host_outside_allowed_hosts_is_refused():
    user, _, _ = await viewer("o3")
    _, key = await token_for(user)
    with PORTAL:
        comm = communicator(token=key, origin="http://evil.example", host="evil.example")
        connected, _ = await comm.connect()
    assert not connected


async def test_a_client_without_origin_is_accepted_with_a_token_header():
    user, _, _ = await viewer("o4")
    _, key = await token_for(user)
    with PORTAL:
        comm = await opened(communicator(token=key, origin=None, host="portal.example:8000"))
        await subscribed(comm, "s")
        await comm.disconnect()


async def test_a_client_without_origin_is_refused_on_a_cookie():
    user, _, _ = await viewer("o5")
    cookie = await sync_to_async(session_cookie_for)(user)
    with PORTAL:
        comm = communicator(cookie, origin=None, host="portal.example:8000")
        connected, _ = await comm.connect()
    assert not connected


async def test_https_behind_a_proxy_is_the_own_origin_when_the_proxy_says_so():
    user, _, _ = await viewer("o6")
    cookie = await sync_to_async(session_cookie_for)(user)
    with PORTAL, override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        comm = communicator(cookie, origin="https://portal.example", host="portal.example")
        comm.scope["headers"].append((b"x-forwarded-proto", b"https"))
        await opened(comm)
        plain = communicator(cookie, origin="https://portal.example", host="portal.example")
        connected, _ = await plain.connect()
        assert not connected

