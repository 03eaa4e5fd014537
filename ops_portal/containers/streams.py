"""Live streams of the container level: every change in the environments a user may view, and the
changes of one engine, container or service (its page)."""
from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can
from ops_portal.core import streams

from . import groups
from .models import Container, Engine, Service

KINDS = {"engine": (Engine, "environment_id"), "container": (Container, "engine__environment_id"),
         "service": (Service, "engine__environment_id")}


@streams.register
class ContainersStream(streams.Stream):
    """{} or {"environment": name}: engines, containers and services as they change."""

    name = "containers"

    def groups(self, user, params):
        return streams.environment_groups(user, params, groups.environment)


@streams.register
class ContainerObjectStream(streams.Stream):
    """{"kind": "container"|"service"|"engine", "id": 12}: changes of one object (a service's tasks too)."""

    name = "container_object"

    def groups(self, user, params):
        kind = params.get("kind")
        if kind not in KINDS:
            raise streams.StreamDenied("kind must be one of: " + ", ".join(KINDS), code="invalid")
        pk = params.get("id")
        if isinstance(pk, bool) or not isinstance(pk, int):
            raise streams.StreamDenied("id must be a whole number.", code="invalid")
        model, path = KINDS[kind]
        environment_id = model.objects.filter(pk=pk).values_list(path, flat=True).first()
        if environment_id is None or not can(user, Action.VIEW, environment_id):
            raise streams.StreamDenied("You may not view that object.")
        return [groups.obj(kind, pk, environment_id)]
