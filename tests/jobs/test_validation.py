"""Parameters, selectors and strategies are validated before any job exists."""
import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core import targets as selectors
from ops_portal.jobs import params
from ops_portal.jobs import strategy as strategies
from ops_portal.jobs.launch import launch as launch_template
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template, update_template
from tests import factories
from tests.helpers import act

pytestmark = pytest.mark.django_db

DEFS = [
    {"name": "count", "type": "int", "min": 1, "max": 10, "required": True},
    {"name": "mode", "type": "choice", "choices": ["fast", "safe"], "default": "safe"},
    {"name": "token", "type": "secret"},
    {"name": "dry", "type": "bool", "default": False},
    {"name": "tag", "type": "string", "pattern": r"v\d+", "max_length": 8},
]


def test_values_are_typed_defaulted_and_secrets_split_out():
    public, secret = params.clean_values(DEFS, {"count": "3", "token": "s3cr3t", "tag": "v2"})
    assert public == {"count": 3, "mode": "safe", "dry": False, "tag": "v2"}
    assert secret == {"token": "s3cr3t"}
    assert params.redacted(public, secret)["token"] == "<secret>"


@pytest.mark.parametrize("values, message", [
    ({"count": 3, "colour": "red"}, "colour: Unknown parameter."),
    ({"count": "three"}, "count: must be a whole number."),
    ({"count": 11}, "count: must be at most 10."),
    ({"count": 0}, "count: must be at least 1."),
    ({}, "count: This parameter is required."),
    ({"count": 1, "mode": "reckless"}, "mode: must be one of fast, safe."),
    ({"count": 1, "dry": "maybe"}, "dry: must be true or false."),
    ({"count": 1, "tag": "latest"}, "tag: must match"),
    ({"count": 1, "tag": "v1\nrm"}, "tag: must be one line."),
])
def test_bad_values_are_refused_with_a_clear_message(values, message):
    with pytest.raises(ValidationError) as error:
        params.clean_values(DEFS, values)
    assert any(m.startswith(message) for m in error.value.message_dict["parameters"])


def test_definitions_are_checked():
    with pytest.raises(ValidationError) as error:
        params.validate_definitions([{"name": "x", "type": "float"}, {"name": "Bad Name", "type": "int"},
                                     {"name": "c", "type": "choice"}, {"name": "n", "type": "int", "default": "z"}])
    messages = " ".join(error.value.message_dict["parameters"])
    assert "type must be one of" in messages and "lower-case identifier" in messages
    assert "non-empty list of choices" in messages and "default must be a whole number" in messages


def test_selectors_resolve_within_the_environment_only(envs):
    alpha, beta = envs
    web = factories.host_group(alpha, "web")
    h1 = factories.host(alpha, "web-1", tags=["blue"])
    h1.groups.add(web)
    factories.host(alpha, "web-2", tags=["green"])
    factories.host(alpha, "db-1")
    factories.host(alpha, "web-3", enabled=False)
    factories.host(beta, "web-9")
    names = lambda sel: [t["name"] for t in selectors.resolve(sel, alpha)]  # noqa: E731
    assert names({"pattern": "web-*"}) == ["web-1", "web-2"]
    assert names({"groups": ["web"]}) == ["web-1"]
    assert names({"tags": ["green", "blue"]}) == ["web-1", "web-2"]
    assert names({"pattern": "web-*", "tags": ["green"]}) == ["web-2"]
    assert names({"all": True}) == ["db-1", "web-1", "web-2"]
    assert names({"names": ["web-9"]}) == []


@pytest.mark.parametrize("selector", [{}, {"pattern": "$(reboot)"}, {"names": "web"}, {"kind": "planet", "all": True},
                                      {"all": "yes"}, {"host": "x"}])
def test_bad_selectors_are_refused(selector):
    with pytest.raises(ValidationError):
        selectors.validate(selector)


def test_rolling_batches_and_thresholds():
    rolling = strategies.validate({"kind": "rolling", "batch_percent": 25, "max_failure_percent": 10, "limit": 3})
    assert strategies.batches(10, rolling) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert strategies.failure_threshold(10, rolling) == 1
    assert strategies.batches(4, strategies.validate(None)) == [[0, 1, 2, 3]]


@pytest.mark.parametrize("strategy", [{"kind": "rolling"}, {"kind": "rolling", "batch_size": 0},
                                      {"limit": 100000}, {"kind": "parallel", "pause_seconds": 3},
                                      {"kind": "rolling", "batch_size": 1, "health_gate": {"type": "http",
                                                                                          "url": "ftp://x"}},
                                      {"rollback_action": "no.such"}, {"speed": "max"}])
def test_bad_strategies_are_refused(strategy):
    with pytest.raises(ValidationError):
        strategies.validate(strategy)


@pytest.mark.parametrize("payload, field", [
    ({"params": {"command": "true", "extra": 1}}, "parameters"),
    ({"params": {}}, "parameters"),
    ({"params": {"command": 5}}, "parameters"),
    ({"selector": {"names": ["nowhere"]}}, "selector"),
    ({"selector": {}}, "selector"),
    ({"strategy": {"kind": "rolling"}}, "strategy"),
    ({"action": "host.reboot-everything"}, "action"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
])
def test_a_bad_launch_is_400_and_creates_no_job(api, make_user, envs, payload, field):
    alpha, _ = envs
    factories.host(alpha, "app-1")
    api.force_authenticate(make_user(Role.OPERATOR, alpha))
    body = {"environment": "alpha", "action": "host.command", "params": {"command": "true"},
            "selector": {"names": ["app-1"]}, **payload}
    response = api.post("/api/jobs/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Job.objects.exists()
    assert not AuditEvent.objects.filter(action="job.launch").exists()


def test_template_launch_validates_launch_parameters(api, make_user, envs):
    alpha, _ = envs
    factories.host(alpha, "app-1")
    admin = make_user(Role.ADMIN, alpha)
    api.force_authenticate(admin)
    created = api.post("/api/job-templates/", {
        "name": "restart", "environment": "alpha", "action": "host.command", "selector": {"all": True},
        "parameters": [{"name": "command", "type": "choice", "choices": ["systemctl restart app", "true"],
                        "required": True}]}, format="json")
    assert created.status_code == 201, created.content
    template_id = created.json()["id"]
    bad = api.post(f"/api/job-templates/{template_id}/launch/", {"params": {"command": "rm -rf /"}}, format="json")
    assert bad.status_code == 400 and not Job.objects.exists()
    good = api.post(f"/api/job-templates/{template_id}/launch/", {"params": {"command": "true"}}, format="json")
    assert good.status_code == 201
    job = Job.objects.get()
    assert (job.params, job.targets_total, job.template_version, job.state) == ({"command": "true"}, 1, 1, "queued")


def test_a_template_cannot_fix_parameters_the_action_lacks(api, make_user, envs):
    api.force_authenticate(make_user(Role.ADMIN, envs[0]))
    response = api.post("/api/job-templates/", {"name": "t", "environment": "alpha", "action": "host.command",
                                                "selector": {"all": True}, "action_params": {"colour": "red"}},
                        format="json")
    assert response.status_code == 400


def test_editing_a_template_bumps_its_version(api, make_user, envs):
    api.force_authenticate(make_user(Role.ADMIN, envs[0]))
    created = api.post("/api/job-templates/", {"name": "t", "environment": "alpha", "action": "host.command",
                                               "selector": {"all": True}}, format="json").json()
    changed = api.patch(f"/api/job-templates/{created['id']}/", {"selector": {"tags": ["web"]}}, format="json")
    assert changed.json()["version"] == 2


def test_ad_hoc_jobs_can_be_switched_off_per_environment(api, make_user, envs):
    alpha, _ = envs
    alpha.allow_adhoc_jobs = False
    alpha.save()
    factories.host(alpha, "app-1")
    api.force_authenticate(make_user(Role.OPERATOR, alpha))
    response = api.post("/api/jobs/", {"environment": "alpha", "action": "host.command",
                                       "params": {"command": "true"}, "selector": {"all": True}}, format="json")
    assert response.status_code == 403


def test_only_admins_launch_emergencies_and_they_must_say_why(api, make_user, envs):
    alpha, _ = envs
    factories.host(alpha, "app-1")
    body = {"environment": "alpha", "action": "host.command", "params": {"command": "true"},
            "selector": {"all": True}, "emergency": True}
    api.force_authenticate(make_user(Role.OPERATOR, alpha))
    assert api.post("/api/jobs/", body, format="json").status_code == 403
    api.force_authenticate(make_user(Role.ADMIN, alpha))
    assert api.post("/api/jobs/", body, format="json").status_code == 400
    ok = api.post("/api/jobs/", {**body, "emergency_reason": "outage INC-42"}, format="json")
    assert ok.status_code == 201
    assert AuditEvent.objects.get(action="job.emergency").extra == {"reason": "outage INC-42"}


def test_secret_parameters_are_stored_encrypted_and_never_returned(api, make_user, envs):
    from django.db import connection

    alpha, _ = envs
    api.force_authenticate(make_user(Role.VIEWER, alpha))
    job = Job.objects.create(name="j", environment=alpha, action="host.command", plan_hash="x",
                             params={"command": "deploy", "token": "<secret>"}, secret_params='{"token": "hunter2"}')
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_params FROM jobs_job WHERE id = %s", [job.pk])
        assert "hunter2" not in cursor.fetchone()[0]
    body = api.get(f"/api/jobs/{job.pk}/").content.decode()
    assert "hunter2" not in body and "<secret>" in body


def test_only_global_admins_act_on_the_portals_own_machine(settings, make_user, envs):
    from django.core.exceptions import PermissionDenied

    from ops_portal.inventory.choices import Transport
    settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN = True
    alpha, _ = envs
    factories.host(alpha, "portal", transport=Transport.LOCAL)
    for user in (make_user(Role.OPERATOR, alpha), make_user(Role.ADMIN, alpha)):
        with pytest.raises(PermissionDenied, match="portal's own machine"):
            launch_adhoc(act(user), environment=alpha, action="host.command",
                                  values={"command": "cat var/portal.env"}, selector={"all": True})
    job = launch_adhoc(act(make_user(Role.ADMIN, None)), environment=alpha,
                                action="host.command", values={"command": "uptime"}, selector={"all": True})
    assert job.state == "queued"
    assert not Job.objects.exclude(pk=job.pk).exists()


def test_work_on_the_portals_machine_needs_everyone_who_shaped_the_plan_to_be_a_global_admin(settings, make_user,
                                                                                            envs):
    """A global admin launching a template an environment admin last edited does not lend its
    authority to that edit; once a global admin has saved the template again, it runs."""
    from django.core.exceptions import PermissionDenied

    from ops_portal.inventory.choices import Transport
    settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN = True
    alpha, _ = envs
    factories.host(alpha, "portal", transport=Transport.LOCAL)
    factories.host(alpha, "web-1")
    root = act(make_user(Role.ADMIN, None))
    env_admin = act(make_user(Role.ADMIN, alpha))
    template = create_template(root, name="t", environment=alpha, action="host.command",
                                        selector={"names": ["web-1"]}, action_params={"command": "uptime"})
    template = update_template(env_admin, template, selector={"names": ["portal"]},
                                        action_params={"command": "cat var/portal.env"})
    with pytest.raises(PermissionDenied, match="the template's last editor is not one"):
        launch_template(root, template)
    assert not Job.objects.exists()
    template = update_template(root, template, description="reviewed")
    assert launch_template(root, template).targets.get().name == "portal"
