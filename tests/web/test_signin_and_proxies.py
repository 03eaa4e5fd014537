"""Attacks on sign-in: the admin's page as a way around the throttle, forged X-Forwarded-For to rotate
the client address or poison the audit log, and malformed addresses to make sign-in fail."""
import ipaddress
import re
import shlex

import pytest
import requests
from django.test import Client

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core import proxy
from ops_portal.jobs.models import Job
from tests import factories
from tests.helpers import ROOT, forget_failed_sign_ins, sign_in
from tests.live import start_web

BAD_ADDRESSES = ["not-an-ip", "999.1.1.1", "1.2.3.4\x00", "::ffff:999.1.1.1", "a" * 500, ", , ,", "fe80::1%eth0",
                 "1.2.3.4:80", "<script>", "10.0.0.1/8", "", "  "]

pytestmark = pytest.mark.usefixtures("fresh_sign_in_throttle")


def trust(settings, *networks):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network(n) for n in networks]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if networks else None


def post_login(client, username, password, *, path="/login/", peer="198.51.100.7", forwarded=None):
    return sign_in(client, username, password, peer, path=path, forwarded=forwarded)


def signed_in(client):
    return "_auth_user_id" in client.session


# The admin's sign-in page ----------------------------------------------------------------------

@pytest.mark.django_db
def test_a_user_locked_out_on_the_sign_in_page_cannot_sign_in_on_the_admin_page():
    factories.superuser("root")
    client = Client()
    for _ in range(5):
        assert post_login(client, "root", "wrong").status_code == 200
    response = post_login(client, "root", factories.PASSWORD, path="/admin/login/")
    assert response.status_code == 200 and not signed_in(client)
    assert "Too many failed sign-ins" in response.content.decode()
    assert client.get("/admin/").status_code == 302
    failed = list(AuditEvent.objects.filter(action="auth.login_failed", object_repr="root").order_by("pk"))
    assert len(failed) == 6 and failed[-1].extra == {"throttled": True}
    assert not AuditEvent.objects.filter(action="auth.login").exists()


@pytest.mark.django_db
def test_failures_on_the_admin_page_count_on_the_sign_in_page():
    factories.superuser("root")
    client = Client()
    for _ in range(5):
        assert post_login(client, "root", "wrong", path="/admin/login/").status_code == 200
    response = post_login(Client(), "root", factories.PASSWORD, peer="192.0.2.50")  # locked by name
    assert "Too many failed sign-ins" in response.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed", client_address="198.51.100.7").count() == 5


@pytest.mark.django_db
def test_a_good_sign_in_does_not_reset_the_count_of_guesses_from_its_address():
    factories.user("mallory")
    for name in ("alice", "bob", "carol", "dave"):
        post_login(Client(), name, "guess")
    assert signed_in_after(post_login(client := Client(), "mallory", factories.PASSWORD), client)
    response = post_login(Client(), "erin", "guess")
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5
    assert "Too many failed sign-ins" in post_login(Client(), "mallory", factories.PASSWORD).content.decode()
    assert response.status_code == 200


def signed_in_after(response, client):
    return response.status_code == 302 and signed_in(client)


# X-Forwarded-For from peers that are not proxies -----------------------------------------------

@pytest.mark.django_db
def test_rotating_x_forwarded_for_neither_resets_the_throttle_nor_changes_the_audited_address():
    factories.user("victim")
    for i in range(5):
        post_login(Client(), f"user{i}", "guess", forwarded=f"203.0.113.{i}")
    response = post_login(Client(), "victim", factories.PASSWORD, forwarded="203.0.113.99")
    assert "Too many failed sign-ins" in response.content.decode()
    addresses = set(AuditEvent.objects.filter(action="auth.login_failed").values_list("client_address", flat=True))
    assert addresses == {"198.51.100.7"}


@pytest.mark.django_db
def test_forwarding_headers_of_an_untrusted_peer_are_dropped(settings):
    trust(settings, "10.0.0.0/8")
    factories.user("alice")
    client = Client()
    response = client.get("/login/", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_PROTO="https",
                          HTTP_X_FORWARDED_FOR="10.0.0.9")
    request = response.wsgi_request
    assert not request.is_secure()
    assert request.META["REMOTE_ADDR"] == "198.51.100.7"
    assert "HTTP_X_FORWARDED_FOR" not in request.META and "HTTP_X_FORWARDED_PROTO" not in request.META


@pytest.mark.django_db
@pytest.mark.parametrize("peer", ["198.51.100.7", "10.0.0.2"])  # an untrusted peer, a trusted proxy
def test_malformed_forwarded_addresses_never_fail_sign_in_or_a_launch(settings, make_user, peer):
    trust(settings, "10.0.0.0/8")
    environment = factories.environment("alpha")
    factories.host(environment, "app-1")
    operator = make_user(Role.OPERATOR, environment, username="olga")
    for index, value in enumerate(BAD_ADDRESSES):
        forget_failed_sign_ins()
        response = post_login(Client(), f"nobody{index}", "guess", peer=peer, forwarded=value)
        assert response.status_code == 200, (value, response.status_code)
        client = Client()
        client.force_login(operator)
        launched = client.post("/api/jobs/", {"environment": "alpha", "action": "host.command",
                                              "params": {"command": "true"}, "selector": {"names": ["app-1"]}},
                               content_type="application/json", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=value)
        assert launched.status_code == 201, (value, launched.content)
    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert failed.count() == len(BAD_ADDRESSES)
    assert set(failed.values_list("client_address", flat=True)) == {peer}
    assert Job.objects.count() == len(BAD_ADDRESSES)
    launches = AuditEvent.objects.filter(action="job.launch").values_list("client_address", flat=True)
    assert set(launches) == {peer}


# X-Forwarded-For from a configured proxy -----------------------------------------------------

@pytest.mark.django_db
def test_a_trusted_proxys_forwarded_address_and_scheme_are_honoured(settings):
    trust(settings, "10.0.0.0/8")
    factories.user("alice")
    client = Client()
    response = post_login(client, "alice", "wrong", peer="10.0.0.2", forwarded="203.0.113.5")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.client_address == "203.0.113.5"
    page = client.get("/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_PROTO="https", secure=False)
    assert page.wsgi_request.is_secure()


@pytest.mark.django_db
def test_behind_a_trusted_proxy_clients_are_throttled_apart(settings):
    trust(settings, "10.0.0.0/8")
    for i in range(5):
        post_login(Client(), f"user{i}", "guess", peer="10.0.0.2", forwarded="203.0.113.5")
    factories.user("alice")
    other = Client()
    assert signed_in_after(post_login(other, "alice", factories.PASSWORD, peer="10.0.0.2",
                                      forwarded="203.0.113.6"), other)
    locked = post_login(Client(), "alice", factories.PASSWORD, peer="10.0.0.2", forwarded="203.0.113.5")
    assert "Too many failed sign-ins" in locked.content.decode()


@pytest.mark.parametrize("peer,forwarded,client", [
    ("198.51.100.7", "203.0.113.5", "198.51.100.7"),              # not a proxy: header ignored
    ("10.0.0.2", None, "10.0.0.2"),                                # proxy, no header: the proxy itself
    ("10.0.0.2", "203.0.113.5", "203.0.113.5"),
    ("10.0.0.2", "1.1.1.1, 203.0.113.5", "203.0.113.5"),           # the client's own prefix proves nothing
    ("10.0.0.2", "203.0.113.5, 10.0.0.3", "203.0.113.5"),          # chain of proxies: right-most untrusted
    ("10.0.0.2", "203.0.113.5, not-an-ip, 10.0.0.3", "10.0.0.3"),  # garbage stops the walk at the last proxy
    ("10.0.0.2", "999.1.1.1", "10.0.0.2"),
    ("10.0.0.2", "::ffff:203.0.113.5", "203.0.113.5"),
    ("10.0.0.2", "[2001:db8::1]", "2001:db8::1"),
    ("::ffff:10.0.0.2", "203.0.113.5", "203.0.113.5"),
    ("not-an-ip", "203.0.113.5", None),
])
def test_the_client_address_is_the_right_most_untrusted_hop(settings, peer, forwarded, client):
    trust(settings, "10.0.0.0/8")
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert proxy.resolve(meta)[0] == client


def test_a_bad_trusted_proxies_entry_stops_start_up():
    with pytest.raises(ValueError, match="TRUSTED_PROXIES: 'example.com'"):
        proxy.parse_networks(["10.0.0.0/8", "example.com"])


# Through the real web server, started as `make run` starts it -------------------------------

def _daphne_argv(port):
    """The daphne command line of scripts/run-portal.sh, with its host and port filled in."""
    line = next(line for line in (ROOT / "scripts" / "run-portal.sh").read_text().splitlines()
                if re.search(r"\bdaphne\b", line) and not line.lstrip().startswith("#"))
    line = line.rstrip().rstrip("&")
    if "cmd[web]=" in line:  # the supervisor's table: cmd[web]=".venv/bin/daphne ..."
        line = shlex.split(line.split("cmd[web]=", 1)[1])[0]
    argv = shlex.split(line)
    return [str(ROOT / a) if a.startswith(".venv/") else a.replace("$HOST", "127.0.0.1").replace("$PORT", str(port))
            for a in argv]


@pytest.fixture
def portal_web(live_env, live_logs):
    process = start_web(live_env, live_logs, name="web-run-portal", argv=_daphne_argv)
    yield process.url
    process.stop()


def _live_login(url, username, password, forwarded):
    session = requests.Session()
    page = session.get(url + "/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(url + "/login/", data={"username": username, "password": password,
                                                "csrfmiddlewaretoken": token},
                        headers={"X-Forwarded-For": forwarded}, allow_redirects=False, timeout=10)


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_web_server_of_make_run_does_not_take_x_forwarded_for_from_clients(portal_web):
    factories.user("victim")
    for i in range(5):
        assert _live_login(portal_web, f"user{i}", "guess", f"203.0.113.{i}").status_code == 200
    for value in ("not-an-ip", "999.1.1.1"):
        assert _live_login(portal_web, "nobody", "guess", value).status_code == 200
    locked = _live_login(portal_web, "victim", factories.PASSWORD, "203.0.113.99")
    assert locked.status_code == 200 and "Too many failed sign-ins" in locked.text
    addresses = set(AuditEvent.objects.filter(action="auth.login_failed").values_list("client_address", flat=True))
    assert addresses == {"127.0.0.1"}
