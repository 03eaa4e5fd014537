"""Everything that changes projects, syncs them, or hands out a pinned copy of one.

Projects are managed objects (audit.crud). A project's files run as code on the portal's machine:
Ansible evaluates lookups, filters, `local_action` and plugins of a playbook in the worker, and a
directory or file:// project reads the portal's own files. So only administrators of all
environments create, change or delete projects (as for hosts with the local transport); viewers of
an environment see its projects, operators sync them and launch what they hold.

A sync is a job (project.sync on the project target kind): history, audit, live output, approval
policies. The revision it finds is written by the job (observed, not audited: the job is).
"""
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from schedulers import sshkeys

from . import sources
from .choices import ProjectKind, ProjectState
from .models import Project
from .targets import PROJECTS

SYNC_ACTION = "project.sync"
SYNC_TIMEOUT = 900
# Pruning: besides the current revision and those pinned by jobs, keep this many other copies.
PRUNE_KEEP_LATEST = 3
# A revision pinned by a job that ended less than this long ago is kept (to look into it, relaunch it).
PRUNE_PINNED_FOR = timedelta(days=7)


def _authorize(authority, project, m2m, before):
    if not authority.everywhere(Action.MANAGE):
        raise PermissionDenied(f"Only administrators of all environments manage project {project.name}: its files "
                               "run as code on the portal's machine.")


def _key_fields(fields):
    """The deploy key checked and described (its fingerprint is shown, the key never); an empty
    value on a change keeps the stored key."""
    if "deploy_key" not in fields:
        return fields
    key = fields["deploy_key"] or ""
    if not key.strip():
        fields.pop("deploy_key")
        return fields
    try:
        _, fingerprint = sshkeys.describe(key, None)
    except sshkeys.BadKeyError as exc:
        raise ValidationError({"deploy_key": [f"{exc} (a deploy key has no passphrase)"]}) from None
    return {**fields, "deploy_key_fingerprint": fingerprint}


def create_project(actor, **fields):
    fields = _key_fields(dict(fields))
    return create_object(actor, Project, fields, authorize=_authorize)


def update_project(actor, project, **fields):
    """Change a project; a new source forgets the synced revision (sync it again)."""
    fields = _key_fields(dict(fields))
    if fields.pop("remove_deploy_key", False):
        fields.update(deploy_key="", deploy_key_fingerprint="")
    with transaction.atomic():
        current = Project.objects.select_for_update().get(pk=project.pk)
        source = {name: getattr(current, name) for name in ("kind", "path", "url", "branch")}
        if any(name in fields and fields[name] != value for name, value in source.items()):
            fields.update(state=ProjectState.NEW, revision="", synced_at=None, last_error="")
        return update_object(actor, current, fields, authorize=_authorize)


def delete_project(actor, project):
    with transaction.atomic():
        project_id = project.pk
        delete_object(actor, project, authorize=_authorize)
        transaction.on_commit(lambda: sources.forget(root(project_id)))


def launch_sync(actor, project):
    """Launch a project.sync job (operators and administrators of the project's environment)."""
    return launch_adhoc(actor, environment=project.environment, action=SYNC_ACTION,
                        selector={"kind": PROJECTS.name, "ids": [str(project.pk)]},
                        name=f"Sync project {project.name}", timeout_seconds=SYNC_TIMEOUT, predefined=True)


# Syncing and checkouts (called in workers) --------------------------------------------------------

def root(project_id) -> Path:
    return sources.project_root(settings.VAR_DIR, project_id)


def fetch(project, *, cancel=None, on_line=None) -> str:
    """Fetch the project's source now; the revision found (not stored: see record_sync)."""
    if project.kind == ProjectKind.DIRECTORY:
        return sources.sync_directory(root(project.pk), path=project.path)
    return sources.sync_git(root(project.pk), url=project.url, branch=project.branch, deploy_key=project.deploy_key,
                            cancel=cancel, on_line=on_line)


def record_sync(project_id, *, revision="", error=""):
    """Store what a sync found (a failed one keeps the last good revision)."""
    now = timezone.now()
    if error:
        Project.objects.filter(pk=project_id).update(state=ProjectState.FAILED, last_error=error[:2000])
    else:
        Project.objects.filter(pk=project_id).update(state=ProjectState.SYNCED, revision=revision, synced_at=now,
                                                     last_error="")


def checkout(project, revision) -> Path:
    """A read-only working copy of the project at `revision` (a synced commit or content hash).

    Raises sources.UnknownRevision (a BackendError: it fails the job's target with its message)
    when the revision was never synced. Safe to call from several threads and processes."""
    return sources.checkout(root(project.pk), revision, git=project.kind == ProjectKind.GIT)


def freeze_launch(public, environment, check):
    """The launch check of an action that runs a project's files: the project named by the parameters
    (in the job's environment) must exist and have been synced, `check(errors)` appends the action's own
    refusals; then the synced revision is written into the plan unless one was given, so an approval and
    a relaunch cover exactly that revision. Refusals are one ValidationError on the parameters."""
    errors = []
    project = Project.objects.filter(environment=environment, name=public.get("project")).first()
    if project is None:
        errors.append(f"project: no project {public.get('project')} in {environment}.")
    elif not public.get("revision") and not project.revision:
        errors.append(f"project: project {project.name} has not been synced yet: sync it first.")
    check(errors)
    if errors:
        raise ValidationError({"parameters": errors})
    if not public.get("revision"):
        public["revision"] = project.revision
    return public


# Pruning old revisions (beat: projects.prune_revisions, hourly) ----------------------------------

def pinned_revisions(project, now=None):
    """Revisions of the project pinned by a job that has not ended or ended within PRUNE_PINNED_FOR."""
    now = now or timezone.now()
    jobs = Job.objects.filter(environment_id=project.environment_id, params__project=project.name).filter(
        Q(finished__isnull=True) | Q(finished__gte=now - PRUNE_PINNED_FOR))
    return {value for value in jobs.values_list("params__revision", flat=True)
            if isinstance(value, str) and sources.REVISION.match(value)}


def prune_project(actor, project_id, *, now=None):
    """Remove the working copies of the project's old revisions on this machine; returns the removed
    revisions. Kept: the current revision, the PRUNE_KEEP_LATEST most recently made others, and every
    revision pinned by a job (pinned_revisions). The copies are first set aside (renamed, out of
    checkout's sight) under the project's lock, the `project.pruned` audit row is written, and they
    are removed once that transaction commits (put back if it fails)."""
    project_root = root(project_id)
    if not (project_root / "rev").is_dir():
        return []
    with sources.locked(project_root):
        sources.restore_set_aside(project_root)
        moved = []
        try:
            with transaction.atomic():
                project = Project.objects.select_for_update().filter(pk=project_id).first()
                if project is None:
                    return []
                present = sources.revisions(project_root)
                pinned = pinned_revisions(project, now) | ({project.revision} if project.revision else set())
                latest = [r for r in present if r != project.revision][:PRUNE_KEEP_LATEST]
                kept = [r for r in present if r in pinned or r in latest]
                doomed = [r for r in present if r not in kept]
                if not doomed:
                    return []
                moved = sources.set_aside(project_root, doomed)
                record(actor, "project.pruned", project,
                       after={"removed": doomed, "kept": kept, "current": project.revision,
                              "pinned_by_jobs": sorted(pinned & set(present) - {project.revision})})
        except BaseException:
            sources.put_back(moved)
            raise
        sources.discard(moved)
    return doomed


def prune_revisions(actor, *, now=None):
    """Prune every project's old revisions on this machine; returns {project id: removed revisions}."""
    removed = {}
    for project_id in Project.objects.order_by("pk").values_list("pk", flat=True):
        gone = prune_project(actor, project_id, now=now)
        if gone:
            removed[project_id] = gone
    return removed
