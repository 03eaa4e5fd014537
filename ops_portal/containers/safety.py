"""Safe defaults (must-have 9): only administrators of the environment may create or update
containers and services whose spec is privileged, uses the host's namespaces, adds capabilities,
maps devices, switches confinement off, or bind-mounts host paths outside the environment's
allowed host paths. Operators get a 403 naming the feature, before any job exists.

decide() is asked by services.py at launch, on the spec as it would be; recheck() asks again in
the worker, on the spec the job is about to send, with the allowed paths of that moment, so a path
removed from the list after the launch is not mounted.
"""
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can
from schedulers import container as backend
from schedulers.base import BackendError

from .models import AllowedHostPath


def allowed_paths(environment_id):
    return list(AllowedHostPath.objects.filter(environment_id=environment_id).values_list("path", flat=True))


def findings(spec, environment_id):
    """The privileged features of a ContainerSpec or ServiceSpec, against the environment's allow-list."""
    return backend.privileged_features(spec, allowed_paths(environment_id))


def describe(found):
    return "; ".join(f"{f.detail} ({f.field})" for f in found)


def decide(actor, environment, specs, *, what="this"):
    """Refuse (PermissionDenied) when any spec uses a privileged feature and the actor is not an
    administrator of the environment. The portal's own work passes."""
    found = [f for spec in specs for f in findings(spec, environment.pk)]
    if not found or actor.user is None or can(actor.user, Action.MANAGE, environment):
        return found
    raise PermissionDenied(f"Only administrators of {environment.name} may launch {what}: it "
                           f"{describe(found)}. Ask an administrator, or add the host path to the allowed "
                           f"host paths of {environment.name} (administrators only).")


def prepare(runner):
    """What recheck() needs, read in the task thread: may the launcher use privileged features now,
    and the allowed paths now."""
    job = runner.job
    user = get_user_model().objects.filter(pk=job.created_by_id, is_active=True).first() if job.created_by_id else None
    privileged = job.is_system or (user is not None and can(user, Action.MANAGE, job.environment_id))
    runner.resources["safety"] = {"privileged": privileged, "paths": allowed_paths(job.environment_id),
                                  "environment": job.environment.name}


def recheck(ctx, spec):
    """In the worker: refuse the spec (the target fails, nothing is sent) if it is privileged and the
    launcher may no longer use that."""
    state = ctx.resources["safety"]
    found = backend.privileged_features(spec, state["paths"])
    if found and not state["privileged"]:
        raise BackendError(f"refused before anything was sent: only administrators of {state['environment']} "
                           f"may use this: it {describe(found)}")
    return found
