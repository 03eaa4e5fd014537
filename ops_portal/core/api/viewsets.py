"""Base API views. Every list and detail is restricted by the permission layer (objects outside
the user's scope are 404); every change goes through a service function (audited, checked after
write)."""
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.core.context import Actor


class PortalViewSet(viewsets.GenericViewSet):
    """Restricts the queryset to what the user may VIEW."""

    view_action = Action.VIEW

    def get_queryset(self):
        return restrict(super().get_queryset(), self.request.user, self.view_action)

    @property
    def actor(self):
        return Actor.from_request(self.request)


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
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        instance = self.perform_create(serializer)
        return Response(self.get_read_serializer(instance).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        instance = self.perform_update(serializer)
        return Response(self.get_read_serializer(instance).data)
