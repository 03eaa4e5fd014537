"""Pages, sign-in, throttling, headers, health and metrics."""
import json
import logging

import pytest
from django.core.cache import cache

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import RoleBinding
from ops_portal.audit.models import AuditEvent
from ops_portal.core.logging import JsonFormatter
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_throttle():
    client = cache._cache.get_client()
    for key in client.scan_iter(match="*login-fail*"):
        client.delete(key)


def sign_in(client, username, password=factories.PASSWORD, address="10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_pages_need_a_signed_in_user(client):
    for path in ("/", "/audit/", "/hosts/", "/access/", "/account/tokens/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_sign_in_and_out_are_audited(client):
    user = factories.user("alice")
    assert sign_in(client, "alice").status_code == 302
    assert client.get("/").status_code == 200
    client.post("/logout/")
    assert client.get("/").status_code == 302
    actions = list(AuditEvent.objects.filter(actor=user).order_by("pk").values_list("action", flat=True))
    assert actions == ["auth.login", "auth.logout"]


def test_sign_in_is_throttled_after_repeated_failures(client):
    factories.user("bob")
    for _ in range(5):
        assert sign_in(client, "bob", "wrong").status_code == 200
    response = sign_in(client, "bob")  # the right password, but locked now
    assert response.status_code == 200
    assert "Too many failed sign-ins" in response.content.decode()
    failed = AuditEvent.objects.filter(action="auth.login_failed", object_repr="bob").order_by("pk")
    assert [event.extra for event in failed] == [None] * 5 + [{"throttled": True}]  # refused unchecked, audited
    other_client = type(client)()
    locked_by_name = sign_in(other_client, "bob", address="10.9.9.9")
    assert "Too many failed sign-ins" in locked_by_name.content.decode()


def test_responses_carry_security_headers(client):
    response = client.get("/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Request-ID"]
    assert "csrfmiddlewaretoken" in response.content.decode()


def test_csrf_is_enforced_on_forms():
    from django.test import Client

    factories.user("carol")
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/login/", {"username": "carol", "password": factories.PASSWORD}).status_code == 403


def test_an_admin_creates_an_operator_bound_to_staging_who_then_sees_staging_only(client):
    staging, production = factories.environment("staging"), factories.environment("production", is_production=True)
    factories.host(staging, "stage-web"), factories.host(production, "prod-web")
    factories.superuser("admin")
    sign_in(client, "admin")
    response = client.post("/access/", {"form": "user", "user-username": "olga",
                                        "user-password": "operator-pass-123"}, follow=True)
    assert "User olga created." in response.content.decode()
    response = client.post("/access/", {"form": "binding", "binding-subject": "olga", "binding-role": "operator",
                                        "binding-environment": staging.pk}, follow=True)
    assert "Role binding added." in response.content.decode()
    assert RoleBinding.objects.filter(user__username="olga", role=Role.OPERATOR, environment=staging).exists()
    client.post("/logout/")
    sign_in(client, "olga", "operator-pass-123")
    page = client.get("/hosts/").content.decode()
    assert "stage-web" in page and "prod-web" not in page
    assert client.get("/access/").status_code == 403
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"user.create", "rolebinding.create", "auth.login"} <= actions


def test_the_access_page_shows_form_errors_instead_of_failing(client):
    factories.superuser("admin")
    sign_in(client, "admin")
    response = client.post("/access/", {"form": "binding", "binding-subject": "nobody-here",
                                        "binding-role": "operator"})
    assert response.status_code == 200
    assert "No user with that name." in response.content.decode()


def test_audit_page_filters_rows(client):
    factories.superuser("admin")
    sign_in(client, "admin")
    page = client.get("/audit/", {"action": "auth.login"}).content.decode()
    assert "auth.login" in page
    assert client.get("/audit/", {"since": "garbage"}).status_code == 200  # shown as a form error


def test_healthz_and_readyz(client, settings):
    assert client.get("/healthz").json() == {"status": "ok"}
    partial = client.get("/readyz", {"check": "database,redis"})
    assert partial.status_code == 200 and partial.json()["checks"]["database"]["ok"]
    assert client.get("/readyz", {"check": "nope"}).status_code == 400


def test_readyz_reports_a_missing_worker_as_unavailable(client):
    from ops_portal.core import redis as portal_redis

    client_ = portal_redis.client()
    for key in client_.scan_iter(match=portal_redis.key("heartbeat", "*")):
        client_.delete(key)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["worker"]["ok"] is False


def test_metrics_are_prometheus_text(client, settings):
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    assert "# TYPE opsportal_http_requests_total counter" in body
    assert 'opsportal_http_requests_total{method="GET",status="2xx"}' in body
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_json_logs_carry_the_request_id_and_extras():
    record = logging.makeLogRecord({"msg": "job %s started", "args": (7,), "levelname": "INFO", "name": "jobs",
                                    "request_id": "abc123", "job_id": 7})
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["request_id"], line["job_id"], line["level"]) == ("job 7 started", "abc123", 7,
                                                                                      "INFO")


def test_the_admin_lets_superusers_look_but_not_change(client):
    root = factories.superuser("root")
    client.force_login(root)
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get("/admin/inventory/host/").status_code == 200
    assert client.get("/admin/inventory/host/add/").status_code == 403
    assert client.get(f"/admin/auth/user/{root.pk}/change/").status_code == 200  # view only
    response = client.post(f"/admin/auth/user/{root.pk}/change/", {"username": "renamed"})
    assert response.status_code == 403
    client.force_login(factories.user("staffer", is_staff=True))
    assert client.get("/admin/audit/auditevent/").status_code == 403


def test_the_admin_never_shows_private_keys_passphrases_or_password_hashes(client, envs):
    from tests.keys import ED25519_PRIVATE

    root = factories.superuser("root")
    credential = factories.credential(envs[0], "deploy")
    credential.passphrase = "pass-phrase-value"
    credential.save()
    client.force_login(root)
    page = client.get(f"/admin/inventory/credential/{credential.pk}/change/").content.decode()
    assert '<div class="readonly">deploy</div>' in page  # the page shows the credential...
    key_line = ED25519_PRIVATE.strip().splitlines()[1]
    assert key_line not in page and "PRIVATE KEY" not in page and "pass-phrase-value" not in page
    page = client.get(f"/admin/auth/user/{root.pk}/change/").content.decode()
    assert root.password not in page and root.password.split("$")[-1] not in page
