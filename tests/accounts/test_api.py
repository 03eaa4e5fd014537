"""Accounts through the API: tokens, role bindings, users and passwords."""
import datetime
import json

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import APIToken, hash_token
from ops_portal.audit.models import AuditEvent
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def token_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_token_is_shown_once_stored_hashed_and_authenticates(api, make_user, envs):
    user = make_user(Role.VIEWER, envs[0])
    api.force_authenticate(user)
    created = api.post("/api/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    token = APIToken.objects.get()
    assert token.key_hash == hash_token(key) and key not in json.dumps(list(APIToken.objects.values()), default=str)
    listed = api.get("/api/tokens/").json()["results"]
    assert "key" not in listed[0] and listed[0]["key_prefix"] == key[:10]
    me = token_client(key).get("/api/me/")
    assert me.status_code == 200
    assert me.json()["permissions"]["view"] == ["alpha"] and me.json()["permissions"]["operate"] == []


def test_a_revoked_token_no_longer_works(api, make_user):
    user = make_user()
    api.force_authenticate(user)
    key = api.post("/api/tokens/", {"name": "ci"}, format="json").json()["key"]
    token_id = APIToken.objects.get().pk
    assert api.delete(f"/api/tokens/{token_id}/").status_code == 204
    response = token_client(key).get("/api/me/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="token.revoke", actor=user).count() == 1


def test_an_expired_token_is_refused(make_user):
    user = make_user()
    key = APIToken.generate_key()
    APIToken.objects.create(user=user, name="old", key_hash=hash_token(key), key_prefix=key[:10],
                            expires=timezone.now() - datetime.timedelta(seconds=1))
    assert token_client(key).get("/api/me/").status_code == 401


@pytest.mark.parametrize("header", ["Token", "Token a b", "Token not-a-portal-token", "Bearer opt_%%%"])
def test_a_malformed_token_is_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("authentication_failed", "not_authenticated")


def test_users_cannot_see_or_revoke_other_peoples_tokens(api, make_user):
    owner, other = make_user(), make_user()
    api.force_authenticate(owner)
    api.post("/api/tokens/", {"name": "mine"}, format="json")
    api.force_authenticate(other)
    assert api.get("/api/tokens/").json()["count"] == 0
    assert api.delete(f"/api/tokens/{APIToken.objects.get().pk}/").status_code == 404
    assert APIToken.objects.get().revoked is None


def test_a_binding_for_an_unknown_user_is_400(api, admin_all, envs):
    api.force_authenticate(admin_all)
    response = api.post("/api/role-bindings/", {"user": "ghost", "role": "viewer"}, format="json")
    assert response.status_code == 400 and "user" in response.json()["error"]["fields"]


def test_an_environment_admin_cannot_grant_rights_elsewhere(api, make_user, envs):
    alpha, beta = envs
    admin = make_user(Role.ADMIN, alpha)
    target = factories.user()
    api.force_authenticate(admin)
    for environment, status in (("beta", 400), (None, 403)):  # beta is out of its view: as if absent
        response = api.post("/api/role-bindings/", {"user": target.username, "role": "admin",
                                                    "environment": environment}, format="json")
        assert response.status_code == status, response.content
    assert not target.role_bindings.exists()


def test_only_a_superuser_may_create_a_superuser(admin_all):
    from django.core.exceptions import PermissionDenied

    from ops_portal.accounts import services

    with pytest.raises(PermissionDenied):
        services.create_user(act(admin_all), username="x", is_superuser=True)


def test_password_change_checks_the_old_password_and_is_audited(api, make_user):
    user = make_user()
    api.force_authenticate(user)
    wrong = api.post("/api/me/password/", {"old_password": "nope", "new_password": "a-new-long-pass-77"},
                     format="json")
    assert wrong.status_code == 400 and "old_password" in wrong.json()["error"]["fields"]
    weak = api.post("/api/me/password/", {"old_password": factories.PASSWORD, "new_password": "123"},
                    format="json")
    assert weak.status_code == 400
    ok = api.post("/api/me/password/", {"old_password": factories.PASSWORD,
                                        "new_password": "a-new-long-pass-77"}, format="json")
    assert ok.status_code == 204
    user.refresh_from_db()
    assert user.check_password("a-new-long-pass-77")
    assert AuditEvent.objects.filter(action="user.change_password", actor=user).count() == 1


def test_nobody_deactivates_itself_or_the_last_administrator_of_everything(api, envs):
    from ops_portal.accounts import services
    from ops_portal.core.context import Actor

    root = factories.superuser("root")
    api.force_authenticate(root)
    response = api.patch(f"/api/users/{root.pk}/", {"is_active": False}, format="json")
    assert response.status_code == 400, response.content
    assert "is_active" in response.json()["error"]["fields"]
    root.refresh_from_db()
    assert root.is_active
    # The last active administrator of all environments stays active, whoever asks.
    other_root = factories.superuser("other-root")
    sole_admin = person(None, Role.ADMIN, "sole-admin")
    root.is_superuser = other_root.is_superuser = False
    root.save(), other_root.save()
    factories.binding(role=Role.ADMIN, user=root, environment=None)
    services.update_user(act(sole_admin), root, is_active=False)
    with pytest.raises(Exception) as refused:
        services.update_user(Actor.system(), sole_admin, is_active=False)
    assert "is_active" in refused.value.message_dict
    sole_admin.refresh_from_db()
    assert sole_admin.is_active


def test_a_binding_changes_role_or_environment_but_not_its_subject(api, make_user, envs):
    from ops_portal.audit.models import AuditEvent

    alpha, beta = envs
    admin = make_user(Role.ADMIN, alpha)
    binding = factories.binding(role=Role.VIEWER, user=factories.user("carol"), environment=alpha)
    api.force_authenticate(admin)
    url = f"/api/role-bindings/{binding.pk}/"
    response = api.patch(url, {"role": "operator"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "operator" and response.json()["user"] == "carol"
    audit = AuditEvent.objects.get(action="rolebinding.update")
    assert (audit.before["role"], audit.after["role"]) == ("viewer", "operator")
    other = factories.user("dave")
    moved = api.patch(url, {"user": other.username}, format="json")
    assert moved.status_code == 400 and "user" in moved.json()["error"]["fields"]
    # An environment administrator moves no binding out of its environments, nor grants everywhere.
    assert api.patch(url, {"environment": "beta"}, format="json").status_code == 400
    assert api.patch(url, {"environment": None}, format="json").status_code == 403
    binding.refresh_from_db()
    assert (binding.user.username, binding.role, binding.environment) == (
        "carol", "operator", alpha)
    assert AuditEvent.objects.filter(action="rolebinding.update").count() == 1
