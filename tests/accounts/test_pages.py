"""Signing in and out, the sign-in throttle, and the access page where admins manage users and roles."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import RoleBinding
from ops_portal.audit.models import AuditEvent
from tests import factories
from tests.helpers import sign_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sign_in_throttle")]


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


def test_the_access_page_edits_a_bindings_role(client, admin_all, envs):
    alpha, _ = envs
    binding = factories.binding(role=Role.VIEWER, user=factories.user("erin"), environment=alpha)
    client.force_login(admin_all)
    assert f"/access/bindings/{binding.pk}/edit/" in client.get("/access/").content.decode()
    page = client.get(f"/access/bindings/{binding.pk}/edit/")
    assert page.status_code == 200 and "user erin" in page.content.decode()
    response = client.post(f"/access/bindings/{binding.pk}/edit/", {"role": "approver", "environment": alpha.pk})
    assert response.status_code == 302
    binding.refresh_from_db()
    assert binding.role == "approver"
    assert AuditEvent.objects.filter(action="rolebinding.update").count() == 1
    bad = client.post(f"/access/bindings/{binding.pk}/edit/", {"role": "emperor", "environment": alpha.pk})
    assert bad.status_code == 200 and "Select a valid choice" in bad.content.decode()
