"""API plumbing shared by every endpoint: one error format, strict filters, body limits, the schema
and its docs, and answers that give away nothing about objects a user may not see."""
import json

import pytest
import yaml
from django.test import override_settings

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.models import Host
from tests import factories

pytestmark = pytest.mark.django_db


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
