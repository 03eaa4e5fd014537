"""Puppet as jobs: hosts without puppet in their facts are left out with the reason, puppet.apply of a
project's manifest on real puppet hosts (changed, then unchanged, pinned revision), --noop as the dry
run, puppet.drift raising and resolving the drift alert, and bad input failing before anything runs."""
import threading
import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import actions
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch, launch_adhoc, request_cancel
from ops_portal.jobs.models import Job, JobEvent
from ops_portal.jobs.preview import preview
from ops_portal.jobs.templates import create_template
from ops_portal.monitoring.choices import OPEN_STATES
from ops_portal.monitoring.models import Alert
from ops_portal.projects import services as projects
from ops_portal.projects.models import Project
from ops_portal.puppet import drift
from tests import factories
from tests.helpers import act, fleet_credential, fleet_host, person, wait_until
from tests.projects.helpers import run_here

pytestmark = pytest.mark.django_db(transaction=True)

PUPPET_FACTS = {"tools": {"python3": {"version": "3.11.2", "path": "/usr/bin/python3"},
                          "puppet": {"version": "7.23.0", "path": "/usr/bin/puppet", "agent_server": ""}}}
PYTHON_FACTS = {"tools": {"python3": {"version": "3.11.2", "path": "/usr/bin/python3"}}}


@pytest.fixture
def unique():
    return f"opsportal-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


def manifest_project(root, path, content="managed by puppet\n"):
    (root / "modules/opsportal_demo/manifests").mkdir(parents=True, exist_ok=True)
    (root / "modules/opsportal_demo/manifests/init.pp").write_text(
        "class opsportal_demo($path, $content) {\n  file { $path: ensure => file, content => $content, "
        "mode => '0640' }\n}\n")
    (root / "manifests").mkdir(exist_ok=True)
    (root / "manifests/site.pp").write_text(
        f"class {{ 'opsportal_demo': path => '{path}', content => \"{content.encode('unicode_escape').decode()}\" }}\n")
    return root


def _hosts(env):
    with_puppet = factories.host(env, "with-puppet")
    without = factories.host(env, "without-puppet")
    never = factories.host(env, "never-gathered")
    with_puppet.facts, without.facts = PUPPET_FACTS, PYTHON_FACTS
    with_puppet.save(update_fields=["facts"])
    without.save(update_fields=["facts"])
    return with_puppet, without, never


def _synced(env, name="site", revision="a" * 64):
    return Project.objects.create(environment=env, name=name, kind="directory", path="/srv/site", revision=revision)


def test_hosts_without_puppet_in_their_facts_are_left_out_with_the_reason(db, monkeypatch):
    monkeypatch.setattr("ops_portal.jobs.launch.enqueue", lambda job: None)
    env = factories.environment("alpha")
    operator = act(person(env, Role.OPERATOR))
    _hosts(env)
    _synced(env)
    spec = actions.get("puppet.apply")
    shown = preview(operator, env, spec, selector={"all": True}, values={"project": "site"})
    assert shown.count == 1 and shown.names == ["with-puppet"]
    reasons = {e["name"]: e["reason"] for e in shown.excluded}
    assert reasons["without-puppet"] == ("puppet is not installed according to its facts: install it "
                                         "(host.install_puppet), then gather facts")
    assert reasons["never-gathered"].startswith("no facts gathered yet")

    job = launch_adhoc(operator, environment=env, action="puppet.apply", values={"project": "site"},
                       selector={"all": True})
    assert list(job.targets.values_list("name", flat=True)) == ["with-puppet"]
    assert job.params["revision"] == "a" * 64  # the synced revision, frozen into the plan at launch
    audit = AuditEvent.objects.get(action="job.launch", object_id=str(job.pk))
    assert {e["name"] for e in audit.after["excluded"]} == {"without-puppet", "never-gathered"}

    with pytest.raises(ValidationError) as refused:
        launch_adhoc(operator, environment=env, action="puppet.apply", values={"project": "site"},
                     selector={"names": ["without-puppet"]})
    assert "No matched host can run apply a puppet manifest: without-puppet: puppet is not installed" in str(
        refused.value.message_dict["selector"])


def test_the_launch_page_preview_names_the_hosts_left_out_and_why(db, client, monkeypatch):
    env = factories.environment("alpha")
    user = person(env, Role.OPERATOR)
    _hosts(env)
    client.force_login(user)
    fields = {"environment": env.pk, "action": "puppet.drift", "puppet.drift__project": "site",
              "puppet.drift__manifest": "manifests/site.pp", "target_all": "on", "strategy_kind": "parallel",
              "limit": "20"}
    response = client.post("/jobs/new/", {**fields, "step": "preview"})
    assert response.status_code == 200
    text = response.content.decode()
    assert 'data-count="1"' in text and "Left out" in text, text[-3000:]
    assert "without-puppet</strong>: puppet is not installed according to its facts" in text
    picker = client.get("/jobs/new/targets/", fields).content.decode()
    assert 'data-count="1"' in picker and "without-puppet" in picker and "never-gathered" in picker, picker
    assert "no facts gathered yet" in picker


def test_an_unknown_or_never_synced_project_and_a_manifest_outside_it_are_refused_at_launch(db, monkeypatch):
    monkeypatch.setattr("ops_portal.jobs.launch.enqueue", lambda job: None)
    env = factories.environment("alpha")
    operator = act(person(env, Role.OPERATOR))
    _hosts(env)
    _synced(env, name="fresh", revision="")
    cases = [({"project": "nope"}, "no project nope in alpha"),
             ({"project": "fresh"}, "project fresh has not been synced yet: sync it first"),
             ({"project": "fresh", "manifest": "../site.pp", "revision": "b" * 40}, "must match")]
    for values, words in cases:
        with pytest.raises(ValidationError) as refused:
            launch_adhoc(operator, environment=env, action="puppet.apply", values=values, selector={"all": True})
        assert words in str(refused.value), refused.value
    assert not Job.objects.exists()


def test_the_portal_machine_and_an_unconfigured_agent_are_left_out(db):
    env = factories.environment("alpha")
    operator = act(person(env, Role.OPERATOR))
    local = factories.host(env, "portal", transport=Transport.LOCAL)
    local.facts = PUPPET_FACTS
    local.save(update_fields=["facts"])
    with pytest.raises(ValidationError, match="not on the portal's own machine"):
        preview(operator, env, actions.get("puppet.apply"), selector={"all": True}, values={"project": "site"})
    _hosts(env)
    with pytest.raises(ValidationError, match="agent is not configured"):
        preview(operator, env, actions.get("puppet.agent"), selector={"names": ["with-puppet"]}, values={})


# Against real puppet hosts -----------------------------------------------------------------------

@pytest.fixture
def world(fleet_puppet, db, var_dir, tmp_path, monkeypatch):
    env = factories.environment("puppetland")
    admin = act(person(None, Role.ADMIN))
    operator = act(person(env, Role.OPERATOR))
    credential = fleet_credential(admin, env, fleet_puppet)
    hosts = [fleet_host(admin, env, credential, h) for h in fleet_puppet.hosts]
    run = run_here(monkeypatch)
    facts = run(launch_adhoc(operator, environment=env, action="host.facts", selector={"all": True}))
    assert facts.state == JobState.SUCCEEDED, facts.error
    return {"env": env, "admin": admin, "operator": operator, "hosts": hosts, "run": run, "tmp": tmp_path}


def _project(world, unique):
    path = f"/etc/{unique}.conf"
    source = manifest_project(world["tmp"] / "src", path)
    project = projects.create_project(world["admin"], name="site", environment=world["env"], kind="directory",
                                      path=str(source))
    synced = world["run"](projects.launch_sync(world["operator"], project))
    assert synced.state == JobState.SUCCEEDED, synced.error
    project.refresh_from_db()
    return project, path


def _launch(world, action, project, **values):
    return world["run"](launch_adhoc(world["operator"], environment=world["env"], action=action,
                                     values={"project": project.name, "manifest": "manifests/site.pp", **values},
                                     selector={"all": True}))


@pytest.mark.fleet
def test_apply_reports_changed_then_unchanged_per_host_and_pins_the_revision(world, fleet_puppet, unique, client):
    project, path = _project(world, unique)
    first = _launch(world, "puppet.apply", project)
    assert first.state == JobState.SUCCEEDED, first.error
    targets = list(first.targets.order_by("index"))
    assert [(t.state, t.changed) for t in targets] == [(TargetState.OK, True)] * len(fleet_puppet.hosts)
    assert all(t.data["resources"]["changed"] == 1 and t.data["revision"] == project.revision for t in targets)
    for host in fleet_puppet.hosts:
        assert fleet_puppet.exec(host.name, ["cat", path]).check().stdout == "managed by puppet\n"
    texts = list(JobEvent.objects.filter(job=first).values_list("text", flat=True))
    assert any(f"revision {project.revision}" in t for t in texts)
    assert any(t.startswith("Resources: ") and "1 changed" in t for t in texts), texts

    again = _launch(world, "puppet.apply", project)
    assert again.state == JobState.SUCCEEDED
    assert {(t.changed, t.data["resources"]["out_of_sync"]) for t in again.targets.all()} == {(False, 0)}

    client.force_login(world["operator"].user)
    page = client.get(reverse("jobs:detail", args=[first.pk])).content.decode()
    assert 'id="puppet-resources"' in page and "Out of sync" in page


@pytest.mark.fleet
def test_noop_changes_nothing_and_the_drift_check_alerts_until_the_host_is_back_in_line(world, fleet_puppet,
                                                                                        unique):
    project, path = _project(world, unique)
    dry = _launch(world, "puppet.apply", project, noop=True)
    assert dry.state == JobState.SUCCEEDED, dry.error
    assert {(t.changed, t.data["resources"]["out_of_sync"]) for t in dry.targets.all()} == {(False, 1)}
    for host in fleet_puppet.hosts:
        assert fleet_puppet.exec(host.name, ["test", "-e", path]).exit_code == 1

    assert _launch(world, "puppet.apply", project).state == JobState.SUCCEEDED
    edited = fleet_puppet.hosts[0]
    fleet_puppet.run(edited.name, f"echo 'edited by hand' > {path}").check()
    check = _launch(world, "puppet.drift", project)
    assert check.state == JobState.SUCCEEDED, check.error
    by_name = {t.name: t for t in check.targets.all()}
    assert by_name[edited.name].data["resources"]["out_of_sync"] == 1
    edited_host = next(h for h in world["hosts"] if h.name == edited.name)
    key = drift.alert_key(edited_host.pk, project.pk, "manifests/site.pp")
    alert = Alert.objects.get(source=drift.ALERT_SOURCE, key=key)
    assert alert.state in OPEN_STATES and alert.host_id == edited_host.pk and "1 Puppet resource" in alert.summary
    assert Alert.objects.filter(source=drift.ALERT_SOURCE, state__in=OPEN_STATES).count() == 1
    assert fleet_puppet.exec(edited.name, ["cat", path]).check().stdout == "edited by hand\n"

    assert _launch(world, "puppet.apply", project).state == JobState.SUCCEEDED
    assert _launch(world, "puppet.drift", project).state == JobState.SUCCEEDED
    alert.refresh_from_db()
    assert alert.state not in OPEN_STATES


@pytest.mark.fleet
def test_an_unknown_revision_or_a_missing_manifest_fails_the_job_before_any_host_is_touched(world, unique):
    project, path = _project(world, unique)
    unknown = _launch(world, "puppet.apply", project, revision="0" * 40)
    assert unknown.state == JobState.FAILED and f"revision {'0' * 40} of the directory was not synced" in unknown.error
    missing = _launch(world, "puppet.apply", project, manifest="manifests/other.pp")
    assert missing.state == JobState.FAILED and "manifests/other.pp is not in project site" in missing.error
    for job in (unknown, missing):
        assert {(t.state, t.exit_code) for t in job.targets.all()} == {(TargetState.FAILED, None)}


def test_the_host_page_lists_the_tools_and_offers_the_puppet_install_to_administrators(db, client):
    env = factories.environment("alpha")
    with_puppet, without, _ = _hosts(env)
    client.force_login(person(env, Role.ADMIN))
    page = client.get(reverse("inventory:host", args=[without.pk])).content.decode()
    assert "python3 3.11.2" in page and "Install Puppet" in page
    page = client.get(reverse("inventory:host", args=[with_puppet.pk])).content.decode()
    assert "puppet 7.23.0 (agent: not configured)" in page and "Install Puppet" not in page
    client.force_login(person(env, Role.OPERATOR))
    assert "Install Puppet" not in client.get(reverse("inventory:host", args=[without.pk])).content.decode()


@pytest.mark.fleet
def test_installing_puppet_is_for_administrators_changes_nothing_where_it_is_and_refreshes_the_facts(world,
                                                                                                     fleet_puppet):
    with pytest.raises(PermissionDenied):
        launch_adhoc(world["operator"], environment=world["env"], action="host.install_puppet",
                     selector={"all": True})
    version = fleet_puppet.exec(fleet_puppet.hosts[0].name, ["puppet", "--version"]).check().stdout.strip()
    job = world["run"](launch_adhoc(world["admin"], environment=world["env"], action="host.install_puppet",
                                    selector={"all": True}))
    assert job.state == JobState.SUCCEEDED, job.error
    assert {(t.state, t.changed) for t in job.targets.all()} == {(TargetState.OK, False)}
    texts = list(JobEvent.objects.filter(job=job).values_list("text", flat=True))
    assert any("puppet-agent is installed already" in t for t in texts)
    assert any(f"Facts gathered: puppet {version}." in t for t in texts), texts
    for host in world["hosts"]:
        host.refresh_from_db()
        assert host.facts["tools"]["puppet"]["version"] == version


@pytest.mark.fleet
def test_a_manifest_with_a_syntax_error_fails_each_target_with_puppets_words_and_changes_nothing(world,
                                                                                                 fleet_puppet,
                                                                                                 unique):
    project, path = _project(world, unique)
    source = world["tmp"] / "src"
    (source / "manifests/site.pp").write_text((source / "manifests/site.pp").read_text() + "file { 'x':\n  ensure =>\n")
    assert world["run"](projects.launch_sync(world["operator"], project)).state == JobState.SUCCEEDED
    project.refresh_from_db()
    job = _launch(world, "puppet.apply", project)
    assert job.state == JobState.FAILED
    for target in job.targets.all():
        assert target.state == TargetState.FAILED and target.exit_code == 1
        assert "Syntax error" in target.error and "manifests/site.pp" in target.error, target.error
        assert "/tmp/opsportal-puppet" not in target.error
    for host in fleet_puppet.hosts:
        assert fleet_puppet.exec(host.name, ["test", "-e", path]).exit_code == 1


def test_a_drift_check_template_freezes_the_revision_synced_when_each_run_is_launched(db, monkeypatch):
    monkeypatch.setattr("ops_portal.jobs.launch.enqueue", lambda job: None)
    env = factories.environment("alpha")
    admin = act(person(env, Role.ADMIN), source="web")
    _hosts(env)
    project = _synced(env)
    template = create_template(admin, name="puppet-drift", environment=env, action="puppet.drift",
                               action_params={"project": "site", "manifest": "manifests/site.pp"},
                               selector={"all": True})
    first = launch(admin, template)
    project.revision = "c" * 64
    project.save(update_fields=["revision"])
    second = launch(admin, template)
    assert (first.params["revision"], second.params["revision"]) == ("a" * 64, "c" * 64)
    assert list(second.targets.values_list("name", flat=True)) == ["with-puppet"]


@pytest.mark.fleet
def test_canceling_a_puppet_job_ends_puppet_and_what_it_started_on_every_host(world, fleet_puppet, unique):
    project, _ = _project(world, unique)
    source = world["tmp"] / "src"
    (source / "manifests/site.pp").write_text(f"exec {{ 'slow': command => '/bin/sleep 300 # {unique}' }}\n")
    assert world["run"](projects.launch_sync(world["operator"], project)).state == JobState.SUCCEEDED
    job = launch_adhoc(world["operator"], environment=world["env"], action="puppet.apply",
                       values={"project": project.name, "manifest": "manifests/site.pp"}, selector={"all": True})
    done = {}
    runner = threading.Thread(target=lambda: done.setdefault("job", world["run"](job)))
    runner.start()
    try:
        for host in fleet_puppet.hosts:
            wait_until(lambda h=host: fleet_puppet.exec(h.name, ["pgrep", "-f", unique]).exit_code == 0, 120,
                       f"the exec resource running on {host.name}")
        request_cancel(world["operator"], job)
    finally:
        runner.join(120)
    assert not runner.is_alive()
    assert done["job"].state == JobState.CANCELED
    for host in fleet_puppet.hosts:
        assert fleet_puppet.exec(host.name, ["pgrep", "-f", unique]).exit_code == 1, "the exec's command survived"
        assert fleet_puppet.exec(host.name, ["pgrep", "-x", "puppet"]).exit_code == 1, "puppet survived"
        assert fleet_puppet.exec(host.name, "ls -d /tmp/opsportal-puppet.* 2>/dev/null; true").stdout == ""
