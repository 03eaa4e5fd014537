"""project.sync: fetch a project's source on the worker's machine and record its revision."""
from ops_portal.jobs.actions import ActionSpec, register
from schedulers.base import BackendError, CommandResult

from . import services
from .targets import PROJECTS


def sync_project(ctx):
    project = ctx.obj
    if project is None:
        raise BackendError("the project is gone")
    ctx.info(f"Syncing {project.source}…")
    try:
        revision = services.fetch(project, cancel=ctx.cancel, on_line=ctx.output)
    except BackendError as exc:
        if not ctx.cancel.is_set():
            error = str(exc)
            ctx.after(lambda: services.record_sync(project.pk, error=error))
        raise
    ctx.after(lambda: services.record_sync(project.pk, revision=revision))
    changed = revision != project.revision
    ctx.info(f"Revision {revision}{' (new)' if changed else ' (unchanged)'}.")
    return CommandResult(exit_code=0, changed=changed, data={"revision": revision, "previous": project.revision})


register(ActionSpec(
    name=services.SYNC_ACTION, label="Sync a project", target_kind=PROJECTS.name, parameters=[], mutating=False,
    description="Fetch the project's Git branch (or hash its directory and keep a snapshot) on the worker and record "
                "the revision found; later jobs pin it.",
    run=sync_project,
))
