"""API plumbing: tokens, one error format, strict filters, body limits, schema and docs."""
import datetime
import json

import pytest
import yaml
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import APIToken, hash_token
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.models import Host
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


def test_invalid_payloads_get_400_with_field_errors_and_change_nothing(api, admin_all, envs):
    api.force_authenticate(admin_all)
    response = api.post("/api/hosts/", {"name": "bad name;rm -rf /", "address": "$(reboot)", "port": 70000,
                                        "environment": "nowhere", "tags": "x"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and set(error["fields"]) >= {"name", "address", "port", "environment"}
    assert response.json()["request_id"]
    assert not Host.objects.exists()
    assert not AuditEvent.objects.filter(action="host.create").exists()


def test_model_validation_errors_are_400_not_500(api, admin_all, envs):
    api.force_authenticate(admin_all)
    response = api.post("/api/hosts/", {"name": "h1", "address": "127.0.0.1", "environment": "alpha",
                                        "variables": {"bad key": 1}}, format="json")
    assert response.status_code == 400
    assert "variables" in response.json()["error"]["fields"]


def test_an_unknown_filter_is_an_error_not_ignored(api, admin_all):
    api.force_authenticate(admin_all)
    response = api.get("/api/hosts/", {"enviroment": "alpha"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"enviroment": ["Unknown query parameter."]}


def test_an_unknown_ordering_is_an_error(api, admin_all):
    api.force_authenticate(admin_all)
    response = api.get("/api/hosts/", {"ordering": "password"})
    assert response.status_code == 400
    assert "ordering" in response.json()["error"]["fields"]


def test_a_bad_filter_value_is_an_error(api, admin_all):
    api.force_authenticate(admin_all)
    assert api.get("/api/audit/", {"since": "yesterday-ish"}).status_code == 400


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_an_oversized_body_is_refused(api, admin_all, envs):
    api.force_authenticate(admin_all)
    body = json.dumps({"name": "t", "description": "x" * 5000})
    response = api.post("/api/teams/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_malformed_json_is_400(api, admin_all):
    api.force_authenticate(admin_all)
    response = api.post("/api/teams/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_duplicates_are_400_with_the_field(api, admin_all, envs):
    api.force_authenticate(admin_all)
    response = api.post("/api/environments/", {"name": "alpha"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


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


def test_the_openapi_schema_describes_every_endpoint(api, make_user):
    api.force_authenticate(make_user())
    response = api.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    for path in ("/api/hosts/", "/api/role-bindings/", "/api/audit/export/", "/api/tokens/{id}/"):
        assert path in schema["paths"], path
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_swagger_ui_uses_only_vendored_assets(client, make_user):
    client.force_login(make_user())
    page = client.get("/api/docs/").content.decode()
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()


def test_the_schema_needs_a_signed_in_user(api):
    assert api.get("/api/schema/").status_code == 401


# Name oracles: a user learns nothing about objects it may not see ------------------------------

def _same_answer(first, second, names):
    """The two answers differ only by the name each request gave."""
    assert first.status_code == second.status_code, (first.content, second.content)
    assert json.dumps(first.json()["error"]).replace(*names) == json.dumps(second.json()["error"])


def test_a_user_who_may_not_write_gets_403_whatever_the_names(api, make_user, envs):
    alpha, beta = envs
    factories.host(beta, "prod-db")
    viewer = make_user(Role.VIEWER, alpha)
    api.force_authenticate(viewer)
    for name in ("prod-db", "fresh-name"):
        response = api.post("/api/hosts/", {"name": name, "address": "10.0.0.1", "environment": "alpha"},
                            format="json")
        assert response.status_code == 403, response.content
    for username in ("ghost", viewer.username, "admin"):
        response = api.post("/api/role-bindings/", {"user": username, "role": "admin"}, format="json")
        assert response.status_code == 403, response.content
    factories.user("taken")
    for username in ("taken", "untaken"):
        assert api.post("/api/users/", {"username": username}, format="json").status_code == 403
    host = factories.host(alpha, "web-1")
    for name in ("prod-db", "fresh-name"):
        assert api.patch(f"/api/hosts/{host.pk}/", {"name": name}, format="json").status_code == 403


def test_objects_outside_the_users_view_answer_as_if_absent(api, make_user, envs):
    from ops_portal.jobs.models import JobTemplate

    alpha, beta = envs
    admin = make_user(Role.ADMIN, alpha)
    hidden = JobTemplate.objects.create(name="t", environment=beta, action="host.command", selector={"all": True})
    api.force_authenticate(admin)
    payload = {"name": "web-2", "address": "10.0.0.1"}
    _same_answer(api.post("/api/hosts/", {**payload, "environment": "beta"}, format="json"),
                 api.post("/api/hosts/", {**payload, "environment": "no-such-env"}, format="json"),
                 ("beta", "no-such-env"))
    schedule = {"name": "s", "kind": "cron", "cron": "0 3 * * *"}
    _same_answer(api.post("/api/schedules/", {**schedule, "template": hidden.pk}, format="json"),
                 api.post("/api/schedules/", {**schedule, "template": hidden.pk + 1000}, format="json"),
                 (f'\\"{hidden.pk}\\"', f'\\"{hidden.pk + 1000}\\"'))
    _same_answer(api.post("/api/role-bindings/", {"user": admin.username, "role": "viewer", "environment": "beta"},
                          format="json"),
                 api.post("/api/role-bindings/", {"user": admin.username, "role": "viewer",
                                                  "environment": "no-such-env"}, format="json"),
                 ("beta", "no-such-env"))


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
