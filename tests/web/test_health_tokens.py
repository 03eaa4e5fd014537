"""/metrics and the details of /readyz are for this machine or token holders; /healthz stays open."""
import ipaddress

import pytest

pytestmark = pytest.mark.django_db

REMOTE = {"REMOTE_ADDR": "203.0.113.5"}


def test_metrics_are_refused_to_a_remote_client_without_a_token(client, settings):
    settings.METRICS_TOKEN = None
    assert client.get("/metrics", **REMOTE).status_code == 403
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1


def test_metrics_answer_a_remote_client_with_the_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert client.get("/metrics", **REMOTE, HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403  # a set token binds all
    response = client.get("/metrics", **REMOTE, HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert response.status_code == 200 and b"opsportal_http_requests_total" in response.content


def test_a_proxy_missing_from_trusted_proxies_does_not_make_its_clients_local(client, settings):
    settings.METRICS_TOKEN = None
    relayed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert relayed.status_code == 403
    readyz = client.get("/readyz", {"check": "database"}, REMOTE_ADDR="127.0.0.1", HTTP_X_REAL_IP="203.0.113.5")
    assert "checks" not in readyz.json()


def test_behind_a_trusted_proxy_the_real_client_decides(client, settings):
    settings.METRICS_TOKEN = None
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 403
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_readyz_tells_a_remote_client_its_status_but_not_its_workers(client, settings):
    from ops_portal.core import heartbeat

    settings.METRICS_TOKEN = None
    settings.HEALTH_TOKEN = "s3cret-health"
    heartbeat.beat_once("worker", "secret-worker@host-a")
    remote = client.get("/readyz", {"check": "database,redis,worker"}, **REMOTE)
    assert remote.status_code == 200 and remote.json() == {"status": "ok"}
    assert b"secret-worker" not in remote.content
    detailed = client.get("/readyz", {"check": "worker"}, **REMOTE, HTTP_AUTHORIZATION="Bearer s3cret-health")
    assert "secret-worker@host-a" in detailed.json()["checks"]["worker"]["alive"]
    settings.HEALTH_TOKEN = None
    assert "checks" not in client.get("/readyz", {"check": "database"}, **REMOTE).json()
    assert "checks" in client.get("/readyz", {"check": "database"}).json()


def test_readyz_keeps_its_status_code_for_load_balancers(client, settings):
    from ops_portal.core import redis as portal_redis

    redis = portal_redis.client()
    for key in redis.scan_iter(match=portal_redis.key("heartbeat", "*")):
        redis.delete(key)
    response = client.get("/readyz", **REMOTE)
    assert response.status_code == 503 and response.json() == {"status": "unavailable"}


def test_healthz_stays_open(client):
    assert client.get("/healthz", **REMOTE).json() == {"status": "ok"}
