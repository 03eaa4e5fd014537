"""Base API views. Every list and detail is restricted by the permission layer (objects outside
the user's scope are 404); every change goes through a service function (audited, decided before
anything is written).

A request to write is refused with 403 before its payload is looked at when the user may not do it
at all (create: nowhere; update: not on this object), and uniqueness is left to the model, after
the service's permission decision: a user who may not write learns nothing from "already exists"."""
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.validators import UniqueForDateValidator, UniqueTogetherValidator, UniqueValidator

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can_on, restrict, scope_for
from ops_portal.core.context import Actor

from .rows import Rows

_UNIQUE_VALIDATORS = (UniqueValidator, UniqueTogetherValidator, UniqueForDateValidator)


def defer_unique_checks(serializer):
    """Drop the serializer's uniqueness checks (the model's full_clean makes them after the
    permission decision, with the same field errors)."""
    for field in serializer.fields.values():
        field.validators = [v for v in field.validators if not isinstance(v, _UNIQUE_VALIDATORS)]
    serializer.validators = [v for v in serializer.validators if not isinstance(v, _UNIQUE_VALIDATORS)]
    return serializer


class PortalViewSet(viewsets.GenericViewSet):
    """Restricts the queryset to what the user may VIEW."""

    view_action = Action.VIEW
    # What creating and changing needs (None: anyone signed in, e.g. one's own tokens), and whether
    # new objects are global (teams, users, environments: administrators of all environments).
    write_action = Action.MANAGE
    create_needs_everywhere = False

    def get_queryset(self):
        return restrict(super().get_queryset(), self.request.user, self.view_action)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.action == "create" and self.write_action is not None:
            scope = scope_for(request.user, self.write_action)
            if scope.empty or (self.create_needs_everywhere and not scope.everywhere):
                raise PermissionDenied(f"You may not {self.write_action} anything here.")

    def require_write_on(self, instance):
        if self.write_action is not None and not can_on(self.request.user, self.write_action, instance):
            raise PermissionDenied(f"You may not {self.write_action} {instance}.")

    @property
    def actor(self):
        return Actor.from_request(self.request)


class RowsListMixin:
    """list() written from values() rows (ops_portal.core.api.rows), with the serializer's JSON:
    for lists whose pages run to a thousand rows. `list_computed` names the fields that are not
    columns (see Rows)."""

    list_computed = {}

    def list_rows(self):
        return Rows(self.get_serializer(), self.list_computed)

    def list(self, request, *args, **kwargs):
        rows = self.list_rows()
        filtered = self.filter_queryset(self.get_queryset())
        queryset = filtered.values(*rows.paths)
        if self.paginator is not None:
            # Count the rows before values() joined the tables of the row paths (a hash join of
            # 200,000 processes with their hosts, just to count them).
            self.paginator.count_source = filtered
        page = self.paginate_queryset(queryset)
        if page is None:
            return Response(rows.write(queryset))
        return self.get_paginated_response(rows.write(page))


class ServiceModelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    PortalViewSet,
):
    """CRUD where create/update/delete call service functions.

    Subclasses implement perform_create(serializer) -> instance, perform_update(serializer) ->
    instance and perform_destroy(instance) by calling their app's services with self.actor.
    The serializer only validates input; it never saves.
    """

    read_serializer_class = None

    def get_read_serializer(self, instance):
        cls = self.read_serializer_class or self.get_serializer_class()
        return cls(instance, context=self.get_serializer_context())

    def create(self, request, *args, **kwargs):
        serializer = defer_unique_checks(self.get_serializer(data=request.data))
        serializer.is_valid(raise_exception=True)
        instance = self.perform_create(serializer)
        return Response(self.get_read_serializer(instance).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        self.require_write_on(instance)
        serializer = defer_unique_checks(self.get_serializer(instance, data=request.data, partial=partial))
        serializer.is_valid(raise_exception=True)
        instance = self.perform_update(serializer)
        return Response(self.get_read_serializer(instance).data)
