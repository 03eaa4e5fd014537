"""Pruning old project revisions: against real git repositories and real directories, the working
copies removed vs kept (current, the 3 latest others, pinned by jobs), the audit row, nothing
removed when the audit cannot be written, and the hourly built-in task."""
import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from ops_portal.audit.models import AuditEvent
from ops_portal.core import periodic
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import Job
from ops_portal.projects import services, sources
from ops_portal.projects import tasks as project_tasks
from tests import factories
from tests.projects.helpers import commit, repository, run_here

pytestmark = pytest.mark.django_db(transaction=True)


def pin(world, project, revision, state, *, ended_days_ago=None):
    finished = timezone.now() - timedelta(days=ended_days_ago) if ended_days_ago is not None else None
    return Job.objects.create(name="playbook", environment=world["env"], action="ansible.playbook", plan_hash="x",
                              state=state, finished=finished,
                              params={"project": project.name, "playbook": "site.yml", "revision": revision})


def git_history(world, tmp_path, monkeypatch, count):
    """A git project synced to the last of `count` commits, with a working copy of each made in order."""
    run = run_here(monkeypatch)
    source = tmp_path / "src"
    commits = [repository(source, {"site.yml": "v0\n"})]
    commits += [commit(source, {"site.yml": f"v{n}\n"}) for n in range(1, count)]
    project = services.create_project(world["admin_all"], name="site", environment=world["env"], kind="git",
                                      url=f"file://{source}", branch="main")
    run(services.launch_sync(world["operator"], project))
    project.refresh_from_db()
    assert project.revision == commits[-1]
    start = time.time() - 3600
    for n, revision in enumerate(commits):
        copy = services.checkout(project, revision)
        os.utime(copy, (start + n, start + n))  # made in commit order
    return project, commits


def test_old_git_revisions_are_pruned_keeping_current_latest_and_pinned(world, var_dir, tmp_path, monkeypatch):
    project, c = git_history(world, tmp_path, monkeypatch, 8)
    pin(world, project, c[0], JobState.RUNNING)  # a running job's revision
    pin(world, project, c[1], JobState.SUCCEEDED, ended_days_ago=10)  # ended long ago: no longer pins
    pin(world, project, c[2], JobState.FAILED, ended_days_ago=2)  # ended recently: kept
    other = factories.environment("beta")  # a project of the same name elsewhere pins nothing here
    Job.objects.create(name="x", environment=other, action="ansible.playbook", plan_hash="x", state=JobState.RUNNING,
                       params={"project": "site", "revision": c[3]})

    removed = services.prune_revisions(services_actor())
    assert removed == {project.pk: [c[3], c[1]]}
    rev = services.root(project.pk) / "rev"
    assert sorted(p.name for p in rev.iterdir()) == sorted([c[0], c[2], c[4], c[5], c[6], c[7]])
    event = AuditEvent.objects.get(action="project.pruned")
    assert event.object_id == str(project.pk) and event.environment_id == world["env"].pk
    assert event.after["removed"] == [c[3], c[1]]
    assert set(event.after["kept"]) == {c[0], c[2], c[4], c[5], c[6], c[7]}
    assert event.after["current"] == c[7] and event.after["pinned_by_jobs"] == sorted([c[0], c[2]])

    # Nothing more to remove: no second row. A removed commit is still in the bare repository: a
    # later checkout of it makes its copy again.
    assert services.prune_revisions(services_actor()) == {}
    assert AuditEvent.objects.filter(action="project.pruned").count() == 1
    assert (services.checkout(project, c[1]) / "site.yml").read_text() == "v1\n"


def test_a_directory_projects_old_snapshots_are_pruned_for_good(world, var_dir, tmp_path, monkeypatch):
    run = run_here(monkeypatch)
    source = tmp_path / "playbooks"
    source.mkdir()
    project = services.create_project(world["admin_all"], name="local", environment=world["env"], kind="directory",
                                      path=str(source), branch="")
    revisions = []
    start = time.time() - 3600
    for n in range(6):
        (source / "site.yml").write_text(f"v{n}\n")
        assert run(services.launch_sync(world["operator"], project)).state == JobState.SUCCEEDED
        project.refresh_from_db()
        revisions.append(project.revision)
        os.utime(services.root(project.pk) / "rev" / project.revision, (start + n, start + n))
    job = pin(world, project, revisions[0], JobState.QUEUED)  # not started yet: pins too

    assert services.prune_project(services_actor(), project.pk) == [revisions[1]]
    assert sources.revisions(services.root(project.pk)) == [revisions[n] for n in (5, 4, 3, 2, 0)]
    with pytest.raises(sources.UnknownRevision, match="not synced on this machine"):
        services.checkout(project, revisions[1])
    assert (services.checkout(project, revisions[0]) / "site.yml").read_text() == "v0\n"

    # Once the job ended more than 7 days ago its revision goes too.
    Job.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED, finished=timezone.now() - timedelta(days=8))
    assert services.prune_project(services_actor(), project.pk) == [revisions[0]]
    assert [e.after["removed"] for e in AuditEvent.objects.filter(action="project.pruned").order_by("pk")] == [
        [revisions[1]], [revisions[0]]]


def test_nothing_is_removed_when_the_audit_row_cannot_be_written(world, var_dir, tmp_path, monkeypatch):
    project, c = git_history(world, tmp_path, monkeypatch, 6)

    def broken(*args, **kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(services, "record", broken)
    with pytest.raises(RuntimeError, match="audit store down"):
        services.prune_project(services_actor(), project.pk)
    assert sorted(sources.revisions(services.root(project.pk))) == sorted(c)
    assert not AuditEvent.objects.filter(action="project.pruned").exists()


def test_copies_set_aside_by_a_prune_that_died_are_judged_again(world, var_dir, tmp_path, monkeypatch):
    project, c = git_history(world, tmp_path, monkeypatch, 5)
    root = services.root(project.pk)
    sources.set_aside(root, [c[0], c[3]])  # as if the prune died before its transaction ended
    assert c[3] not in sources.revisions(root)
    assert services.prune_project(services_actor(), project.pk) == [c[0]]
    assert sorted(p.name for p in (root / "rev").iterdir()) == sorted(c[1:])


def test_the_hourly_built_in_task_prunes_as_the_schedule(world, var_dir, tmp_path, monkeypatch):
    builtin = periodic.builtins()["projects: prune old revisions"]
    assert (builtin.task, builtin.every_seconds) == ("projects.prune_revisions", 3600)
    project, c = git_history(world, tmp_path, monkeypatch, 5)
    project_tasks.prune_revisions.apply()
    event = AuditEvent.objects.get(action="project.pruned")
    assert event.after["removed"] == [c[0]] and event.source == "schedule"


def services_actor():
    from ops_portal.core.choices import Source
    from ops_portal.core.context import Actor

    return Actor.system(Source.SCHEDULE)
