"""Engines: registration (make run, make fleet), a connection test that says an engine's state in
plain words (down, unsupported), the watcher's readiness; container and service selectors and what
an approver approves; who may subscribe to which container stream."""
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.containers import streams as container_streams  # noqa: F401 — registers the streams
from ops_portal.containers.models import Container, Engine
from ops_portal.containers.targets import CONTAINERS, SERVICES
from ops_portal.core import streams
from ops_portal.inventory.choices import Transport
from tests import factories
from tests.containers.helpers import container, engine, person, service
from tests.schedulers.container_rigs import OldEngine

pytestmark = pytest.mark.django_db


def test_register_engine_ties_the_local_socket_to_the_local_host_once(env, docker_client):
    host = factories.host(env, "portal", transport=Transport.LOCAL)
    out = io.StringIO()
    call_command("register_engine", "--if-socket", stdout=out)
    registered = Engine.objects.get(url="unix:///var/run/docker.sock")
    assert (registered.environment, registered.host, registered.state) == (env, host, "ok")
    assert "Registered engine 'local'" in out.getvalue()
    call_command("register_engine", "--environment", env.name, "--name", "fleet", stdout=out)
    assert Engine.objects.count() == 1 and "is registered in ct" in out.getvalue()
    call_command("register_engine", "--if-socket", "--url", "unix:///nowhere/docker.sock", stdout=out)
    assert Engine.objects.count() == 1 and "No Docker socket at /nowhere/docker.sock" in out.getvalue()


def test_the_connection_test_says_down_and_unsupported_in_plain_words(env, api, tmp_path):
    admin = person(env, Role.ADMIN)
    root = factories.user("root")
    factories.binding(role=Role.ADMIN, user=root, environment=None)
    api.force_authenticate(root)
    missing = engine(env, name="gone", url=f"unix://{tmp_path}/missing.sock")
    body = api.post(reverse("api:engine-test", args=[missing.pk])).json()
    assert body["state"] == "down" and "no Docker socket at" in body["message"]
    old = OldEngine(str(tmp_path / "old.sock"))
    try:
        ancient = engine(env, name="ancient", url=f"unix://{tmp_path}/old.sock")
        body = api.post(reverse("api:engine-test", args=[ancient.pk])).json()
        assert body["state"] == "unsupported" and "API 1.23" in body["message"]
        assert Engine.objects.get(pk=ancient.pk).error == body["message"]
    finally:
        old.shutdown()
        old.server_close()
    page = api.get(reverse("api:engine-detail", args=[ancient.pk])).json()
    assert "tls_key" not in page and page["state"] == "unsupported"
    api.force_authenticate(admin)  # the environment's administrators may test its engines (it changes nothing)
    assert api.post(reverse("api:engine-test", args=[missing.pk])).status_code == 200
    api.force_authenticate(person(env, Role.OPERATOR))
    assert api.post(reverse("api:engine-test", args=[missing.pk])).status_code == 403


def test_the_tls_client_key_is_encrypted_and_never_returned(env, api):
    from django.db import connection

    from tests.web.api_cases import FAKE_KEY, FAKE_PEM

    api.force_authenticate(person(env, Role.ADMIN))
    response = api.post(reverse("api:engine-list"), {"name": "tls", "environment": env.name, "transport": "tcp",
                                                     "url": "tcp://127.0.0.1:2376", "tls_cert": FAKE_PEM,
                                                     "tls_key": FAKE_KEY}, format="json")
    assert response.status_code == 201 and "tls_key" not in response.json() and response.json()["tls_key_set"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tls_key FROM containers_engine WHERE name = 'tls'")
        assert "PRIVATE KEY" not in cursor.fetchone()[0]
    from ops_portal.audit.models import AuditEvent

    assert AuditEvent.objects.get(action="engine.create").after["tls_key"] == "<secret>"
    plain = api.post(reverse("api:engine-list"), {"name": "plain", "environment": env.name, "transport": "tcp",
                                                  "url": "tcp://127.0.0.1:2377"}, format="json")
    assert plain.status_code == 400 and "tls_cert" in plain.json()["error"]["fields"]


def test_selectors_pick_containers_by_label_service_and_id_and_fingerprints_pin_image_and_version(env):
    local = engine(env, url="unix:///run/ct-selectors.sock")
    web = container(local, "web-1", labels={"team": "shop"}, service_name="shop_web", image_id="sha256:a")
    container(local, "db-1", labels={"team": "data"})
    def names(selector):
        return [e["name"] for e in CONTAINERS.resolve(CONTAINERS.validate_selector(selector), env)]

    assert names({"labels": ["team=shop"]}) == ["local/web-1"]
    assert names({"labels": ["team"]}) == ["local/db-1", "local/web-1"]
    assert names({"services": ["shop_web"]}) == ["local/web-1"]
    assert names({"ids": [str(web.pk)]}) == ["local/web-1"]
    assert names({"pattern": "db-*", "engines": ["local"]}) == ["local/db-1"]
    with pytest.raises(ValidationError):
        CONTAINERS.validate_selector({"labels": ["bad label\n"]})
    with pytest.raises(ValidationError):
        CONTAINERS.validate_selector({})
    assert CONTAINERS.fingerprint(web) == {"engine": "local", "engine_url": local.url, "docker_id": web.docker_id,
                                           "image_id": "sha256:a"}
    shop = service(local, "shop_web", version=7)
    assert SERVICES.fingerprint(shop)["version"] == 7
    Engine.objects.filter(pk=local.pk).update(enabled=False)
    assert names({"all": True}) == []


def test_container_streams_are_only_for_those_who_may_view(env):
    other = factories.environment("other")
    mine = container(engine(env, url="unix:///run/ct-a.sock"), "web-1")
    theirs = container(engine(other, name="theirs", url="unix:///run/ct-b.sock"), "web-2")
    viewer = person(env, Role.VIEWER)
    stream = streams.get("container_object")
    assert stream.groups(viewer, {"kind": "container", "id": mine.pk}) == [
        f"containers.container.{mine.pk}.env.{env.pk}"]
    with pytest.raises(streams.StreamDenied):
        stream.groups(viewer, {"kind": "container", "id": theirs.pk})
    with pytest.raises(streams.StreamDenied):
        stream.groups(viewer, {"kind": "nope", "id": 1})
    assert streams.get("containers").groups(viewer, {}) == [f"containers.env.{env.pk}"]
    with pytest.raises(streams.StreamDenied):
        streams.get("containers").groups(viewer, {"environment": "other"})
    assert Container.objects.count() == 2


def test_readiness_wants_a_watcher_only_when_enabled_engines_exist(env, client):
    from ops_portal.core import redis as portal_redis
    from ops_portal.core.health import run_checks

    for key in portal_redis.client().scan_iter(match=portal_redis.key("heartbeat", "watcher", "*")):
        portal_redis.client().delete(key)
    assert run_checks(["watcher"])["watcher"]["ok"] is True
    engine(env, url="unix:///run/ct-ready.sock")
    assert run_checks(["watcher"])["watcher"]["ok"] is False
    assert client.get("/readyz", {"check": "watcher"}).status_code == 503


def test_the_admin_shows_engines_but_never_their_client_key(client, env):
    from tests.web.api_cases import FAKE_KEY, FAKE_PEM

    remote = engine(env, name="remote", url="tcp://10.1.2.3:2376", transport="tcp", tls_cert=FAKE_PEM,
                    tls_key=FAKE_KEY)
    client.force_login(factories.superuser("root"))
    page = client.get(f"/admin/containers/engine/{remote.pk}/change/").content.decode()
    assert "tcp://10.1.2.3:2376" in page and "PRIVATE KEY" not in page
    assert client.post(f"/admin/containers/engine/{remote.pk}/change/", {"name": "x"}).status_code == 403
