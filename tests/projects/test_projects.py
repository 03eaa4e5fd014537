"""Projects: who manages them, the deploy key kept secret, syncs as jobs against real git and real
directories, and pinned read-only checkouts of synced revisions."""
import os
import stat

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.models import JobEvent
from ops_portal.projects import services, sources
from ops_portal.projects.choices import ProjectState
from ops_portal.projects.models import Project
from tests import keys
from tests.helpers import person
from tests.projects.helpers import commit, repository, run_here

pytestmark = pytest.mark.django_db(transaction=True)


def git_project(world, url, **fields):
    return services.create_project(world["admin_all"], name=fields.pop("name", "site"), environment=world["env"],
                                   kind="git", url=url, branch=fields.pop("branch", "main"), **fields)


def test_only_administrators_of_all_environments_manage_projects(world):
    with pytest.raises(PermissionDenied, match="administrators of all environments"):
        services.create_project(world["admin"], name="site", environment=world["env"], kind="git",
                                url="https://git.example.test/site.git")
    assert not Project.objects.exists() and not AuditEvent.objects.filter(action__startswith="project.").exists()
    project = git_project(world, "https://git.example.test/site.git")
    with pytest.raises(PermissionDenied):
        services.update_project(world["admin"], project, url="file:///etc")
    with pytest.raises(PermissionDenied):
        services.delete_project(world["admin"], project)
    assert Project.objects.get().url == "https://git.example.test/site.git"


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /tmp/x", "file://host/etc",
                                 "ftp://example.test/repo.git", "https://example.test/r.git;id", "file:///srv/../etc"])
def test_urls_git_would_run_as_a_command_or_option_are_refused(world, url):
    with pytest.raises(ValidationError) as error:
        git_project(world, url)
    assert "url" in error.value.error_dict
    assert not Project.objects.exists()


def test_the_deploy_key_is_stored_encrypted_and_never_returned_or_audited(world, api):
    project = git_project(world, "ssh://git@127.0.0.1:2222/site.git", deploy_key=keys.ED25519_PRIVATE)
    raw = Project.objects.filter(pk=project.pk).values_list("deploy_key", flat=True)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT deploy_key FROM projects_project WHERE id = %s", [project.pk])
        stored = cursor.fetchone()[0]
    assert "PRIVATE KEY" not in stored and raw[0] == keys.ED25519_PRIVATE
    assert project.deploy_key_fingerprint.startswith("SHA256:")
    event = AuditEvent.objects.get(action="project.create")
    assert event.after["deploy_key"] == "<secret>"
    api.force_authenticate(world["admin_all"].user)
    body = api.get(reverse("api:project-detail", args=[project.pk])).json()
    assert "deploy_key" not in body and body["deploy_key_set"] is True
    # An empty key on a change keeps the stored one; a key that is not one is refused on its field.
    assert api.patch(reverse("api:project-detail", args=[project.pk]), {"deploy_key": ""},
                     format="json").status_code == 200
    assert Project.objects.get().deploy_key == keys.ED25519_PRIVATE
    response = api.patch(reverse("api:project-detail", args=[project.pk]), {"deploy_key": "not a key"}, format="json")
    assert response.status_code == 400 and "deploy_key" in response.json()["error"]["fields"]


def test_the_deploy_key_exists_only_in_a_private_file_while_git_runs(tmp_path):
    with sources._git_env(tmp_path, keys.ED25519_PRIVATE) as env:
        key_file = env["GIT_SSH_COMMAND"].split(" -i ")[1].strip("'")
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
        assert keys.ED25519_PRIVATE.strip() not in env["GIT_SSH_COMMAND"]
    assert not os.path.exists(key_file) and not os.path.exists(os.path.dirname(key_file))


def test_a_git_project_syncs_as_a_job_and_checkouts_stay_pinned_to_their_revision(world, var_dir, tmp_path,
                                                                                  monkeypatch):
    run = run_here(monkeypatch)
    source = tmp_path / "src"
    first = repository(source, {"site.yml": "- hosts: all\n", "roles/web/tasks/main.yml": "[]\n"})
    project = git_project(world, f"file://{source}")
    assert project.state == ProjectState.NEW

    job = run(services.launch_sync(world["operator"], project))
    assert job.state == JobState.SUCCEEDED, job.error
    project.refresh_from_db()
    assert (project.state, project.revision, project.last_error) == (ProjectState.SYNCED, first, "")
    assert job.targets.get().data == {"revision": first, "previous": ""}
    assert any(first in e.text for e in JobEvent.objects.filter(job=job))

    second = commit(source, {"site.yml": "- hosts: web\n"})
    run(services.launch_sync(world["operator"], project))
    project.refresh_from_db()
    assert project.revision == second

    old, new = services.checkout(project, first), services.checkout(project, second)
    assert (old / "site.yml").read_text() == "- hosts: all\n"
    assert (new / "site.yml").read_text() == "- hosts: web\n"
    assert (old / "roles/web/tasks/main.yml").exists()
    # Read-only for everyone (the tests run as root, which os.access would always let write).
    assert not stat.S_IMODE((old / "site.yml").stat().st_mode) & 0o222 and not stat.S_IMODE(old.stat().st_mode) & 0o222
    assert services.checkout(project, first) == old  # made once
    with pytest.raises(sources.UnknownRevision, match="not in the project's synced history"):
        services.checkout(project, "0" * 40)
    with pytest.raises(sources.UnknownRevision, match="is not a revision"):
        services.checkout(project, "main")


def test_a_failed_sync_fails_the_job_with_gits_words_and_keeps_the_last_revision(world, var_dir, tmp_path,
                                                                                monkeypatch):
    run = run_here(monkeypatch)
    source = tmp_path / "src"
    first = repository(source, {"site.yml": "[]\n"})
    project = git_project(world, f"file://{source}")
    run(services.launch_sync(world["operator"], project))
    Project.objects.filter(pk=project.pk).update(branch="no-such-branch")  # as if the branch were deleted upstream
    project.refresh_from_db()
    job = run(services.launch_sync(world["operator"], project))
    assert job.state == JobState.FAILED
    target = job.targets.get()
    assert target.state == TargetState.FAILED and "couldn't find remote ref" in target.error
    project.refresh_from_db()
    assert project.state == ProjectState.FAILED and "couldn't find remote ref" in project.last_error
    assert project.revision == first


def test_a_directory_project_records_a_content_hash_and_keeps_a_snapshot_of_each_revision(world, var_dir, tmp_path,
                                                                                         monkeypatch):
    run = run_here(monkeypatch)
    source = tmp_path / "playbooks"
    (source / "roles").mkdir(parents=True)
    (source / "site.yml").write_text("v1\n")
    project = services.create_project(world["admin_all"], name="local", environment=world["env"], kind="directory",
                                      path=str(source), branch="")
    run(services.launch_sync(world["operator"], project))
    project.refresh_from_db()
    first = project.revision
    assert len(first) == 64 and first == sources.content_hash(source)
    (source / "site.yml").write_text("v2\n")
    run(services.launch_sync(world["operator"], project))
    project.refresh_from_db()
    assert project.revision != first
    assert (services.checkout(project, first) / "site.yml").read_text() == "v1\n"
    assert (services.checkout(project, project.revision) / "site.yml").read_text() == "v2\n"
    os.symlink("/etc/passwd", source / "escape")
    job = run(services.launch_sync(world["operator"], project))
    assert job.state == JobState.FAILED and "links outside the project directory" in job.targets.get().error


def test_a_changed_source_forgets_the_synced_revision_and_is_audited(world):
    project = git_project(world, "https://git.example.test/site.git")
    Project.objects.filter(pk=project.pk).update(state=ProjectState.SYNCED, revision="a" * 40)
    project = services.update_project(world["admin_all"], project, branch="release")
    assert (project.state, project.revision) == (ProjectState.NEW, "")
    event = AuditEvent.objects.filter(action="project.update").latest("pk")
    assert event.before["branch"] == "main" and event.after["branch"] == "release"


def test_the_api_creates_and_syncs_a_project_and_refuses_bad_input_with_field_errors(world, api, monkeypatch):
    monkeypatch.setattr("ops_portal.jobs.launch.enqueue", lambda job: None)
    api.force_authenticate(world["admin_all"].user)
    bad = api.post(reverse("api:project-list"), {"name": "p", "environment": "alpha", "kind": "git",
                                                 "url": "ext::sh -c id"}, format="json")
    assert bad.status_code == 400 and "url" in bad.json()["error"]["fields"]
    missing = api.post(reverse("api:project-list"), {"name": "p", "environment": "alpha", "kind": "directory"},
                       format="json")
    assert missing.status_code == 400 and "path" in missing.json()["error"]["fields"]
    assert not Project.objects.exists()
    created = api.post(reverse("api:project-list"), {"name": "p", "environment": "alpha", "kind": "git",
                                                     "url": "https://git.example.test/p.git", "branch": "main"},
                       format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    api.force_authenticate(world["operator"].user)
    synced = api.post(reverse("api:project-sync", args=[pk]))
    assert synced.status_code == 201 and synced.json()["action"] == "project.sync"
    viewer = person(world["env"], Role.VIEWER)
    api.force_authenticate(viewer)
    assert api.post(reverse("api:project-sync", args=[pk])).status_code == 403


def test_the_pages_list_create_and_sync_projects(world, client, monkeypatch, tmp_path):
    monkeypatch.setattr("ops_portal.jobs.launch.enqueue", lambda job: None)
    client.force_login(world["admin_all"].user)
    response = client.post(reverse("projects:new"), {"name": "site", "environment": world["env"].pk, "kind": "git",
                                                     "url": "https://git.example.test/site.git", "branch": "main"})
    assert response.status_code == 302, response.content.decode()[:2000]
    project = Project.objects.get()
    bad = client.post(reverse("projects:edit", args=[project.pk]), {
        "name": "site", "environment": world["env"].pk, "kind": "git", "url": "ext::sh", "branch": "main"})
    assert bad.status_code == 200 and "Remote helpers" in bad.content.decode()
    assert Project.objects.get().url == "https://git.example.test/site.git"
    client.force_login(world["admin"].user)
    assert client.get(reverse("projects:new")).status_code == 403
    client.force_login(world["operator"].user)
    page = client.get(reverse("projects:home")).content.decode()
    assert "site" in page and "Sync now" in page and "New project" not in page
    response = client.post(reverse("projects:sync", args=[project.pk]))
    assert response.status_code == 302 and "/jobs/" in response["Location"]
    detail = client.get(reverse("projects:detail", args=[project.pk])).content.decode()
    assert "Sync project site" in detail
