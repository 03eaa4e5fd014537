"""Every user-supplied value is checked before it reaches the database: odd dates, numbers, NUL
characters and nesting are 400s with field errors, never 500s (on the real PostgreSQL)."""
import json

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.core.api.filters import PortalFilterSet, StrictFilterBackend
from ops_portal.core.api.router import router
from ops_portal.inventory.models import Host
from ops_portal.jobs.models import Job, JobTemplate
from tests import factories

pytestmark = pytest.mark.django_db

LISTS = ["/api/audit/", "/api/alerts/", "/api/jobs/"]


@pytest.fixture
def admin(api, admin_all):
    api.force_authenticate(admin_all)
    return api


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                   "0001-01-01T00:00:00+23:59"])
@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("param", ["since", "until"])
def test_dates_that_leave_the_calendar_in_utc_are_field_errors(admin, url, param, value):
    response = admin.get(url, {param: value})
    assert response.status_code == 400, response.content
    assert param in response.json()["error"]["fields"]


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00+23:59", "2024-01-01T00:00:00-16:00",
                                   "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00Z"])
@pytest.mark.parametrize("url", LISTS)
def test_far_offsets_are_the_same_instant_in_utc(admin, url, value):
    # PostgreSQL refuses offsets beyond ±15:59; these used to reach it as they were written.
    assert admin.get(url, {"since": value, "until": value}).status_code == 200


def test_the_audit_page_shows_an_out_of_range_date_as_a_form_error(client, admin_all):
    client.force_login(admin_all)
    for value in ("2024-01-01T00:00:00+23:59", "0001-01-01T00:00:00+05:00"):
        assert client.get("/audit/", {"since": value}).status_code == 200
        assert client.get("/jobs/", {"since": value}).status_code == 200


@pytest.mark.parametrize("params", [{"host": str(2**64)}, {"host": "-" + str(2**70)}, {"rule": "1e30"},
                                    {"source": "a\x00b"}, {"environment": "\x00"}, {"offset": str(10**30)},
                                    {"limit": str(10**30)}])
def test_odd_filter_values_are_answered_without_a_server_error(admin, params):
    factories.host(factories.environment("alpha"), "app-1")
    response = admin.get("/api/alerts/", params)
    assert response.status_code in (200, 400), response.content
    if "\x00" in "".join(params.values()) or "host" in params or "rule" in params:
        assert response.status_code == 400 and set(params) <= set(response.json()["error"]["fields"])


def test_every_filter_set_checks_its_values():
    for _, viewset, _ in router.registry:
        cls = getattr(viewset, "filterset_class", None)
        if cls is not None:
            assert issubclass(cls, PortalFilterSet), viewset.__name__


def test_the_backend_refuses_a_filter_set_that_does_not_check_its_values():
    import django_filters
    from django.core.exceptions import ImproperlyConfigured

    class Loose(django_filters.FilterSet):
        class Meta:
            model = Host
            fields = ["name"]

    class View:
        filterset_class = Loose

    with pytest.raises(ImproperlyConfigured):
        StrictFilterBackend().get_filterset_class(View(), Host.objects.all())


@pytest.mark.parametrize("body,message", [
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": {"a": "x\\u0000y"}}', "Null"),
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": {"a\\u0000": 1}}', "Null"),
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": {"a": 1e400}}', "finite"),
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": {"a": 99999999999999999999}}',
     "64 bits"),
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": {"a": NaN}}', ""),
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": ' + "[" * 100 + "]" * 100 + "}",
     "deeper"),
    ('{"name": "web-9", "environment": "alpha", "address": "10.0.0.9", "variables": ' + "[" * 100000
     + "]" * 100000 + "}", "deeper"),
    ('{"name": "web\\u0000", "environment": "alpha", "address": "10.0.0.9"}', "Null"),
])
def test_json_no_column_can_hold_is_refused_before_validation(admin, body, message):
    factories.environment("alpha")
    response = admin.generic("POST", "/api/hosts/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]["message"]
    assert not Host.objects.exists()


# Job parameters ---------------------------------------------------------------------------------

@pytest.fixture
def deployer(api, make_user):
    environment = factories.environment("alpha")
    factories.host(environment, "app-1")
    api.force_authenticate(make_user(Role.ADMIN, environment))
    return api


@pytest.mark.parametrize("release_id", ["-rf", ".hidden", "--help", "a b", "a/b", "x" * 200])
def test_a_release_id_the_backend_would_refuse_is_a_400_at_launch(deployer, release_id):
    response = deployer.post("/api/jobs/", {"environment": "alpha", "action": "host.deploy",
                                            "params": {"artifact": 1, "base_dir": "/srv/app", "release_id": release_id},
                                            "selector": {"names": ["app-1"]}}, format="json")
    assert response.status_code == 400, response.content
    assert "release_id" in json.dumps(response.json()["error"]["fields"])
    assert not Job.objects.exists()


def test_a_templates_fixed_parameters_are_checked_when_it_is_saved(deployer):
    response = deployer.post("/api/job-templates/", {
        "name": "deploy", "environment": "alpha", "action": "host.deploy", "selector": {"all": True},
        "action_params": {"base_dir": "/srv/app", "release_id": "-rf"}}, format="json")
    assert response.status_code == 400, response.content
    assert "action_params" in response.json()["error"]["fields"]
    assert not JobTemplate.objects.exists()


@pytest.mark.parametrize("definition", [
    {"name": "n", "type": "int", "min": "a"}, {"name": "n", "type": "int", "max": 1.5},
    {"name": "n", "type": "string", "max_length": 0}, {"name": "n", "type": "string", "help": ["x"]},
    {"name": "n", "type": "choice", "choices": [1, None]}, {"name": "n", "type": "bool", "required": "yes"},
    {"name": "n", "type": "int", "default": str(2**64)},
])
def test_parameter_definitions_that_would_fail_a_launch_are_refused_when_saved(deployer, definition):
    response = deployer.post("/api/job-templates/", {
        "name": "cmd", "environment": "alpha", "action": "host.command", "selector": {"all": True},
        "parameters": [{**definition, "name": "command"}]}, format="json")
    assert response.status_code == 400, response.content
    assert "parameters" in response.json()["error"]["fields"]


def test_an_integer_parameter_beyond_64_bits_is_a_400(deployer):
    response = deployer.post("/api/jobs/", {"environment": "alpha", "action": "host.deploy",
                                            "params": {"artifact": str(2**64), "base_dir": "/srv/app"},
                                            "selector": {"names": ["app-1"]}}, format="json")
    assert response.status_code == 400, response.content


def test_unknown_api_paths_answer_in_json(admin):
    for method, path in (("get", "/api/nope/"), ("post", "/api/alerts/0.5/acknowledge/"),
                         ("delete", "/api/hosts/1e5/")):
        response = getattr(admin, method)(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", (path, response)
    assert admin.get("/api/hosts").status_code == 301  # a missing trailing slash is still redirected


@pytest.mark.parametrize("url,body", [
    ("/api/system-schedules/{task}/", {"every_seconds": 136042376495787}),  # found by the API fuzz run
    ("/api/jobs/", {"environment": "alpha", "action": "host.command", "params": {"command": "true"},
                    "selector": {"names": ["app-1"]}, "target_timeout_seconds": 2**40}),
])
def test_numbers_beyond_their_32_bit_columns_are_400s(admin, url, body):
    from django_celery_beat.models import PeriodicTask

    from ops_portal.core import periodic

    factories.host(factories.environment("alpha"), "app-1")
    periodic.ensure_builtins()
    task = PeriodicTask.objects.filter(name__in=list(periodic.builtins())).first()
    method = admin.patch if "{task}" in url else admin.post
    response = method(url.format(task=task.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert set(body) & set(response.json()["error"]["fields"])


@pytest.mark.parametrize("path,params", [
    ("/api/inventory/export/", {"environment": "a\x00b"}),  # found by the API fuzz run: its own parsing
    ("/api/hosts/", {"x\x00": "1"}), ("/hosts/", {"q": "\x00"}), ("/approvals/link/a%00b/", {}),
    ("/api/approvals/%00/", {}),
])
def test_nul_characters_in_the_address_are_400s_everywhere(client, admin_all, path, params):
    client.force_login(admin_all)
    response = client.get(path, params)
    assert response.status_code == 400, response.content
    if path.startswith("/api/"):
        assert response.json()["error"]["code"] == "invalid"
