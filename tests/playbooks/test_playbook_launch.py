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
    ({"extra": "x"}, "extra: Unknown parameter."),  # ad-hoc jobs take no extra vars
])
def test_input_that_cannot_run_is_refused_before_a_job_exists(world, values, said):
    with pytest.raises(ValidationError) as error:
        adhoc(world, **values)
    assert any(message.startswith(said) for message in error.value.message_dict["parameters"])
    assert not Job.objects.exists()


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
