"""What every page and endpoint shares: signing in first, security headers, CSRF, health, metrics,
JSON logs, and an admin site that shows but never changes or reveals secrets."""
import json
import logging

import pytest

from ops_portal.core.logging import JsonFormatter
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sign_in_throttle")]


def test_pages_need_a_signed_in_user(client):
    for path in ("/", "/audit/", "/hosts/", "/access/", "/account/tokens/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


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
