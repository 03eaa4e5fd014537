"""Configuration templates: validation, rendering from group and host variables, the API, and the
jobs their buttons launch (without running them; the fleet tests run them)."""
import pytest
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.configs import rendering, services
from ops_portal.configs.models import ConfigTemplate, DriftReport, parse_plan_ids
from ops_portal.jobs.models import Job
from tests import factories
from tests.configs.helpers import config
from tests.helpers import act, operator, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(env):
    """web-1 in groups "web" (port 80, tier web) and "zz-override" (port 81); its own variable wins."""
    first = factories.host_group(env, "web", variables={"port": 80, "tier": "web", "log": "info"})
    second = factories.host_group(env, "zz-override", variables={"port": 81, "log": "debug"})
    host = factories.host(env, "web-1", address="10.0.0.5", tags=["blue"], variables={"log": "warn"},
                          facts={"os": {"id": "debian"}}, credential=factories.credential(env))
    host.groups.set([second, first])
    return host


def admin(env):
    return person(env, Role.ADMIN)


# Rendering -----------------------------------------------------------------------------------

def test_render_merges_group_variables_by_group_name_then_host_variables_and_adds_host(env, web):
    template = config(env, content="port={{ port }} tier={{ tier }} log={{ log }}\n"
                                   "{{ host.name }} {{ host.address }} {{ host.environment }} "
                                   "{{ host.tags|join(',') }} {{ host.groups|join(',') }} {{ host.facts.os.id }}\n")
    rendered = services.render_for(admin(env), template, web)
    assert rendered["content"] == ("port=81 tier=web log=warn\n"
                                   "web-1 10.0.0.5 alpha blue web,zz-override debian\n")
    assert rendered["targeted"] is True and rendered["path"] == "/etc/app.conf"


def test_a_missing_variable_is_an_error_that_names_it_and_its_line(env, web):
    template = config(env, content="a=1\nb={{ db_password }}\n")
    with pytest.raises(ValidationError) as caught:
        services.render_for(admin(env), template, web)
    message = caught.value.message_dict["content"][0]
    assert "'db_password' is undefined" in message and "line 2" in message and "web-1" in message


def test_default_and_is_defined_still_work_with_strict_undefined(env, web):
    template = config(env, content="{{ missing|default('x') }}{% if other is defined %}y{% endif %}\n")
    assert services.render_for(admin(env), template, web)["content"] == "x\n"


def test_the_sandbox_keeps_templates_away_from_python_internals_and_credentials(env, web):
    for source in ("{{ ''.__class__.__mro__ }}", "{{ lipsum.__globals__ }}", "{{ cycler.__init__.__globals__ }}",
                   "{{ host.credential.private_key }}", "{{ 'x' * 100000000 }}", "{{ 9 ** 99999 }}"):
        with pytest.raises(rendering.RenderError):
            rendering.render(source, services.variables_for(web))


def test_rendering_keeps_the_final_newline_and_does_not_escape_html(env, web):
    assert rendering.render("<{{ 'a&b' }}>\n\n", {}) == b"<a&b>\n\n"


# Validation ----------------------------------------------------------------------------------

GOOD = {"name": "app", "selector": {"groups": ["web"]}, "path": "/etc/app/app.conf", "content": "x={{ x }}\n",
        "mode": "0640", "owner": "daemon", "group": "adm", "service_action": "supervisorctl restart app"}


@pytest.mark.parametrize("field,value", [
    ("path", "etc/app.conf"), ("path", "/etc/../shadow"), ("path", "/etc/./app.conf"), ("path", "/etc//app.conf"),
    ("path", "/etc/app conf"), ("path", "/etc/app;touch /tmp/x"), ("path", "/etc/$(id)"), ("path", "/etc/a\nb.conf"),
    ("path", "/proc/sys/kernel/x"), ("path", "/dev/sda"), ("path", "/etc/"), ("path", "/"), ("path", "/etc/-rf"),
    ("mode", "999"), ("mode", "4755"), ("mode", "rwxr-x---"), ("mode", 644), ("mode", "07777"),
    ("owner", "root;rm -rf /"), ("owner", "$(id)"), ("owner", "a b"), ("group", "adm`id`"), ("owner", "-root"),
    ("content", "{% if x %}unclosed"), ("content", "{{ x }"), ("service_action", "a\nb"),
    ("selector", {"names": "web-1"}), ("selector", {}),
])
def test_bad_input_is_a_400_with_a_field_error(api, env, field, value):
    api.force_authenticate(admin(env))
    response = api.post("/api/config-templates/", {**GOOD, "environment": env.name, field: value}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not ConfigTemplate.objects.exists()


def test_a_syntax_error_names_its_line(api, env):
    api.force_authenticate(admin(env))
    response = api.post("/api/config-templates/", {**GOOD, "environment": env.name, "content": "a\n{% for %}\n"},
                        format="json")
    assert "line 2" in response.json()["error"]["fields"]["content"][0]


def test_create_stores_the_octal_mode_and_edits_bump_the_version(api, env):
    api.force_authenticate(admin(env))
    created = api.post("/api/config-templates/", {**GOOD, "environment": env.name}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["mode"], body["version"], body["selector"]) == ("0640", 1, {"kind": "host", "groups": ["web"]})
    assert ConfigTemplate.objects.get().mode == 0o640
    url = f"/api/config-templates/{body['id']}/"
    assert api.patch(url, {"content": "x={{ x }}!\n"}, format="json").json()["version"] == 2
    assert api.patch(url, {"content": "x={{ x }}!\n"}, format="json").json()["version"] == 2  # nothing changed
    assert {"version": 3, "mode": None}.items() <= api.patch(url, {"mode": None}, format="json").json().items()
    actions = list(AuditEvent.objects.filter(object_type="configs.configtemplate").order_by("pk")
                   .values_list("action", flat=True))
    assert actions == ["configtemplate.create", "configtemplate.update", "configtemplate.update"]


def test_the_name_is_unique_per_environment(api, env):
    api.force_authenticate(admin(env))
    assert api.post("/api/config-templates/", {**GOOD, "environment": env.name}, format="json").status_code == 201
    response = api.post("/api/config-templates/", {**GOOD, "environment": env.name}, format="json")
    assert response.status_code == 400


# The render endpoint ---------------------------------------------------------------------------

def test_render_endpoint_returns_the_content_for_one_host_to_an_operator_not_a_viewer(api, env, web):
    template = config(env, content="port={{ port }}\n", mode=0o600)
    api.force_authenticate(person(env, Role.VIEWER))
    assert api.post(f"/api/config-templates/{template.pk}/render/?host={web.pk}").status_code == 403
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/config-templates/{template.pk}/render/?host={web.pk}")
    assert response.status_code == 200, response.content
    expected = {"host": "web-1", "content": "port=81\n", "mode": "0600", "targeted": True}
    assert expected.items() <= response.json().items()


def test_render_endpoint_refuses_missing_variables_hosts_out_of_reach_and_sensitive_templates(api, env, web):
    other = factories.environment("beta")
    stranger = factories.host(other, "db-9")
    api.force_authenticate(person(env, Role.OPERATOR))
    missing = config(env, content="{{ nope }}")
    response = api.post(f"/api/config-templates/{missing.pk}/render/?host={web.pk}")
    assert response.status_code == 400 and "'nope' is undefined" in response.json()["error"]["fields"]["content"][0]
    fine = config(env)
    assert api.post(f"/api/config-templates/{fine.pk}/render/?host={stranger.pk}").status_code == 400
    assert api.post(f"/api/config-templates/{fine.pk}/render/").status_code == 400
    secret = config(env, sensitive=True, content="password={{ port }}\n")
    assert api.post(f"/api/config-templates/{secret.pk}/render/?host={web.pk}").status_code == 403
    api.force_authenticate(admin(env))
    assert api.post(f"/api/config-templates/{secret.pk}/render/?host={web.pk}").json()["content"] == "password=81\n"
    foreign = config(other)
    assert api.post(f"/api/config-templates/{foreign.pk}/render/?host={web.pk}").status_code == 404


# Launching -----------------------------------------------------------------------------------

def test_apply_launches_a_config_apply_job_pinned_to_the_template_version(api, env, web):
    template = config(env, selector={"groups": ["web"]})
    template.version = 4
    template.save()
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/config-templates/{template.pk}/apply/", {"dry_run": True}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.action, job.params, job.state) == ("config.apply", {"configs": f"{template.pk}@4", "dry_run": True},
                                                   "queued")
    assert list(job.targets.values_list("name", flat=True)) == ["web-1"]
    assert response.json()["url"] == f"/jobs/{job.pk}/"
    assert parse_plan_ids(job.params["configs"]) == [(template.pk, 4)]


def test_apply_needs_operate_and_an_enabled_template(api, env, web):
    template = config(env)
    api.force_authenticate(person(env, Role.VIEWER))
    assert api.post(f"/api/config-templates/{template.pk}/apply/", {}, format="json").status_code == 403
    api.force_authenticate(person(env, Role.OPERATOR))
    template.enabled = False
    template.save()
    response = api.post(f"/api/config-templates/{template.pk}/apply/", {}, format="json")
    assert response.status_code == 400 and "enabled" in response.json()["error"]["fields"]
    assert not Job.objects.exists()


def test_apply_to_some_hosts_only_takes_targets_of_the_template(api, env, web):
    factories.host(env, "web-2")
    outsider = factories.host(factories.environment("beta"), "db-1")
    template = config(env)
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/config-templates/{template.pk}/apply/", {"hosts": [web.pk]}, format="json")
    job = Job.objects.get(pk=response.json()["id"])
    assert list(job.targets.values_list("name", flat=True)) == ["web-1"]
    response = api.post(f"/api/config-templates/{template.pk}/apply/", {"hosts": [outsider.pk]}, format="json")
    assert response.status_code == 400 and "hosts" in response.json()["error"]["fields"]


def test_a_gated_environment_holds_the_apply_for_approval_even_without_ad_hoc_jobs(env, web):
    env.allow_adhoc_jobs = False
    env.save()
    ApprovalPolicy.objects.create(name="config-changes", environment=env, risks=["config_change"])
    template = config(env)
    job = services.launch_apply(operator(env), template)
    assert job.state == "pending_approval" and job.approval_request is not None
    dry = services.launch_apply(operator(env), template, dry_run=True)
    assert dry.state == "queued"  # a dry run carries no config_change risk


def test_remediate_applies_the_reports_template_to_its_host(api, env, web):
    factories.host(env, "web-2")
    template = config(env)
    report = DriftReport.objects.create(config=template, host=web, config_version=1, drifted=True,
                                        checked="2026-01-01T00:00:00Z")
    api.force_authenticate(person(env, Role.VIEWER))
    assert api.post(f"/api/drift-reports/{report.pk}/remediate/").status_code == 403
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/drift-reports/{report.pk}/remediate/")
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.action == "config.apply" and list(job.targets.values_list("name", flat=True)) == ["web-1"]


def test_drift_reports_filter_by_host_config_and_drifted(api, env, web):
    other_host = factories.host(env, "web-2")
    first, second = config(env), config(env)
    rows = [DriftReport.objects.create(config=c, host=h, config_version=1, drifted=d, checked="2026-01-01T00:00Z")
            for c, h, d in ((first, web, True), (first, other_host, False), (second, web, None))]
    api.force_authenticate(person(env, Role.VIEWER))

    def ids(query):
        response = api.get(f"/api/drift-reports/?{query}")
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert ids(f"host={web.pk}") == [rows[0].pk, rows[2].pk]
    assert ids(f"config={first.pk}") == [rows[0].pk, rows[1].pk]
    assert ids("drifted=true") == [rows[0].pk]
    assert ids("drifted=false") == [rows[1].pk]
    assert ids("unknown=true") == [rows[2].pk]
    assert api.get("/api/drift-reports/?nonsense=1").status_code == 400


def test_deleting_a_template_removes_its_reports(api, env, web):
    template = config(env)
    DriftReport.objects.create(config=template, host=web, config_version=1, drifted=False, checked="2026-01-01T00:00Z")
    api.force_authenticate(admin(env))
    assert api.delete(f"/api/config-templates/{template.pk}/").status_code == 204
    assert not DriftReport.objects.exists()


def test_check_drift_endpoint_launches_a_read_only_drift_job(api, env, web):
    template = config(env)
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/config-templates/{template.pk}/check-drift/")
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.action, job.params) == ("config.drift", {"configs": str(template.pk)})


def test_services_refuse_a_user_without_manage(env):
    with pytest.raises(Exception) as caught:
        services.create_config(act(person(env, Role.OPERATOR)), name="x", environment=env, selector={"all": True},
                               path="/etc/x", content="")
    assert type(caught.value).__name__ == "PermissionDenied"
    assert not ConfigTemplate.objects.exists()


def test_a_sensitive_templates_drift_keeps_no_diff(env, web):
    from ops_portal.configs import drift

    template = config(env, sensitive=True)
    drift.store_results(web.pk, None, [{"config": template.pk, "drifted": True, "changes": ["content"],
                                        "diff": "-password=old\n+password=new\n"}])
    report = DriftReport.objects.get()
    assert (report.drifted, report.changes, report.diff) == (True, ["content"], "")
