"""Launching ansible.playbook: the project's synced revision pinned into the plan (and kept by a
relaunch), template parameters passed on as extra vars (secrets stored encrypted), and input
that cannot run refused with field errors before a job exists."""
import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from ops_portal.accounts.choices import Role
from ops_portal.jobs import launch as launching
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.launch import launch, launch_adhoc, relaunch
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template
from ops_portal.projects.models import Project
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db

REVISION = "a" * 40


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setattr(launching, "enqueue", lambda job: None)
    env = factories.environment("alpha")
    factories.host(env, "web-1")
    project = Project.objects.create(environment=env, name="site", url="https://git.example.test/site.git",
                                     branch="main", revision=REVISION, state="synced")
    return env, act(person(env, Role.ADMIN)), act(person(env, Role.OPERATOR)), project


def adhoc(world, **values):
    env, _, operator, _ = world
    return launch_adhoc(operator, environment=env, action="ansible.playbook",
                        values={"project": "site", "playbook": "site.yml", **values}, selector={"all": True})


def test_the_synced_revision_is_pinned_at_launch_and_a_relaunch_keeps_it(world):
    env, _, operator, project = world
    job = adhoc(world)
    assert job.params["revision"] == REVISION and job.state == JobState.QUEUED
    Project.objects.filter(pk=project.pk).update(revision="b" * 40)
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    again = relaunch(operator, Job.objects.get(pk=job.pk))
    assert again.params["revision"] == REVISION
    assert adhoc(world).params["revision"] == "b" * 40
    assert adhoc(world, revision="c" * 64).params["revision"] == "c" * 64  # a pinned one is kept


@pytest.mark.parametrize("values,said", [
    ({"project": "nope"}, "project: no project nope in alpha."),
    ({"playbook": "../../etc/site.yml"}, "playbook: give a relative .yml or .yaml path"),
    ({"playbook": "/etc/site.yml"}, "playbook: give a relative .yml or .yaml path"),
    ({"limit": "@/etc/hosts"}, "limit: the limit must be one Ansible host pattern"),
    ({"limit": "web,db"}, "limit: the limit must be one Ansible host pattern"),
    ({"tags": "a b"}, "tags: not tag names: a b."),
    ({"revision": "main"}, "revision: must match"),
    ({"extra": "x"}, "extra: Unknown parameter."),  # ad-hoc extra vars go in extra_vars
    ({"extra_vars": "[1, 2]"}, "extra_vars: give a mapping of variable names to values"),
    ({"extra_vars": "a: [1"}, "extra_vars: not a JSON or YAML mapping"),
    ({"extra_vars": "a: &x [1]\nb: *x"}, "extra_vars: YAML anchors and aliases"),
    ({"extra_vars": "9lives: 1"}, "extra_vars: not variable names"),
    ({"extra_vars": "ansible_host: 10.0.0.1"}, "extra_vars: ansible_host: the portal sets how Ansible reaches"),
    ({"extra_vars": "ansible_ssh_common_args: -oProxyCommand=id"}, "extra_vars: ansible_ssh_common_args: the"),
    ({"extra_vars": "when: 2024-01-01"}, "extra_vars: when is a date"),
    ({"extra_vars": "x: !!python/object/apply:os.system [id]"}, "extra_vars: not a JSON or YAML mapping"),
    ({"extra_vars": "a: " + "[" * 12 + "]" * 12}, "extra_vars: a[0][0][0][0][0][0][0][0][0][0][0] is nested"),
    ({"extra_vars": "x" * 16385}, "extra_vars: must be at most 16384 characters."),
])
def test_input_that_cannot_run_is_refused_before_a_job_exists(world, values, said):
    with pytest.raises(ValidationError) as error:
        adhoc(world, **values)
    assert any(message.startswith(said) for message in error.value.message_dict["parameters"])
    assert not Job.objects.exists()


def test_ad_hoc_extra_vars_are_checked_and_frozen_as_canonical_json(world):
    job = adhoc(world, extra_vars="version: '1.2'\nreplicas: 3\nopts: {debug: true, names: [a, b]}\n")
    assert job.params["extra_vars"] == '{"opts": {"debug": true, "names": ["a", "b"]}, "replicas": 3, "version": "1.2"}'
    same = adhoc(world, extra_vars='{"version": "1.2", "opts": {"names": ["a", "b"], "debug": true}, "replicas": 3}')
    assert same.params["extra_vars"] == job.params["extra_vars"] and same.plan_hash == job.plan_hash
    assert "extra_vars" not in adhoc(world, extra_vars="  \n").params  # nothing given
    assert "extra_vars" not in adhoc(world, extra_vars="{}").params


def test_an_extra_var_given_twice_or_a_connection_variable_as_a_template_parameter_is_refused(world):
    env, admin, operator, _ = world
    template = create_template(admin, name="deploy", environment=env, action="ansible.playbook",
                               selector={"all": True}, action_params={"project": "site", "playbook": "site.yml"},
                               parameters=[{"name": "version", "type": "string"},
                                           {"name": "extra_vars", "type": "text"}])
    with pytest.raises(ValidationError, match="extra_vars: version also given as a parameter of the template"):
        launch(operator, template, {"version": "1", "extra_vars": "version: 2"})
    assert launch(operator, template, {"version": "1", "extra_vars": "other: 2"}).params["extra_vars"] == '{"other": 2}'
    sneaky = create_template(admin, name="sneaky", environment=env, action="ansible.playbook",
                             selector={"all": True}, action_params={"project": "site", "playbook": "site.yml"},
                             parameters=[{"name": "ansible_host", "type": "string"}])
    with pytest.raises(ValidationError, match="ansible_host: the portal sets how Ansible reaches a host"):
        launch(operator, sneaky, {"ansible_host": "10.0.0.1"})


def test_the_api_and_the_preview_take_extra_vars_as_a_mapping_or_text(world, client):
    from rest_framework.test import APIClient

    from ops_portal.jobs import actions
    from ops_portal.jobs.preview import preview

    env, _, operator, _ = world
    api = APIClient()
    api.force_authenticate(operator.user)
    body = {"environment": env.name, "action": "ansible.playbook", "selector": {"all": True},
            "params": {"project": "site", "playbook": "site.yml", "extra_vars": {"b": [1, 2], "a": "x"}}}
    created = api.post("/api/jobs/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["params"]["extra_vars"] == '{"a": "x", "b": [1, 2]}'
    bad = api.post("/api/jobs/", {**body, "params": {**body["params"], "extra_vars": "ansible_port: 2222"}},
                   format="json")
    assert bad.status_code == 400 and "ansible_port" in str(bad.json()["error"]["fields"]["parameters"])
    assert Job.objects.count() == 1
    shown = preview(operator, env, actions.get("ansible.playbook"), selector={"all": True},
                    values={"project": "site", "playbook": "site.yml", "extra_vars": "a: 1\nb: [x]"})
    assert shown.params["extra_vars"] == '{"a": 1, "b": ["x"]}'
    with pytest.raises(ValidationError, match="extra_vars: give a mapping"):
        preview(operator, env, actions.get("ansible.playbook"), selector={"all": True},
                values={"project": "site", "playbook": "site.yml", "extra_vars": "just text"})


def test_a_project_never_synced_is_refused(world):
    Project.objects.update(revision="")
    with pytest.raises(ValidationError, match="has not been synced yet"):
        adhoc(world)


def test_template_parameters_become_extra_vars_and_secret_ones_are_stored_encrypted(world):
    env, admin, operator, _ = world
    template = create_template(admin, name="deploy", environment=env, action="ansible.playbook",
                               selector={"all": True}, action_params={"project": "site", "playbook": "site.yml"},
                               parameters=[{"name": "version", "type": "string", "required": True},
                                           {"name": "token", "type": "secret"}])
    job = launch(operator, template, {"version": "1.2; rm -rf /", "token": "s3cr3t-value"})
    assert job.params["version"] == "1.2; rm -rf /" and job.params["token"] == "<secret>"
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT secret_params FROM jobs_job WHERE id = %s", [job.pk])
        assert "s3cr3t-value" not in cursor.fetchone()[0]
    assert job.secret_params == '{"token": "s3cr3t-value"}'  # for the worker
    assert job.params["revision"] == REVISION
    with pytest.raises(ValidationError, match="Unknown parameter"):
        launch(operator, template, {"version": "1", "other": "x"})


def test_actions_without_extra_parameters_still_refuse_template_parameters_they_lack(world):
    env, admin, _, _ = world
    with pytest.raises(ValidationError, match="host.command has no parameter version"):
        create_template(admin, name="cmd", environment=env, action="host.command", selector={"all": True},
                        action_params={"command": "true"}, parameters=[{"name": "version", "type": "string"}])


def test_the_launch_page_takes_extra_vars_shows_them_in_the_preview_and_bad_ones_on_the_page(world, client):
    env, _, operator, _ = world
    client.force_login(operator.user)
    fields = {"environment": env.pk, "action": "ansible.playbook", "ansible.playbook__project": "site",
              "ansible.playbook__playbook": "site.yml", "target_all": "on", "strategy_kind": "parallel",
              "limit": "20"}
    page = client.get("/jobs/new/").content.decode()
    assert 'name="ansible.playbook__extra_vars"' in page
    shown = client.post("/jobs/new/", {**fields, "ansible.playbook__extra_vars": "b: [1]\na: x\n", "step": "preview"})
    assert shown.status_code == 200
    text = shown.content.decode()
    # Canonical JSON, as the job stores it (a string inside the parameters' JSON).
    assert '&quot;extra_vars&quot;: &quot;{\\&quot;a\\&quot;: \\&quot;x\\&quot;, \\&quot;b\\&quot;: [1]}&quot;' in text
    bad = client.post("/jobs/new/", {**fields, "ansible.playbook__extra_vars": "ansible_user: evil", "step": "launch"})
    assert bad.status_code == 200 and "the portal sets how Ansible reaches a host" in bad.content.decode()
    assert not Job.objects.exists()
    client.post("/jobs/new/", {**fields, "ansible.playbook__extra_vars": "{\"n\": 2}", "step": "launch"})
    assert Job.objects.get().params["extra_vars"] == '{"n": 2}'
