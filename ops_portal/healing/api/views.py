from rest_framework import mixins

from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet

from .. import services
from ..filtersets import HealingEventFilterSet, HealingPolicyFilterSet
from ..models import HealingEvent, HealingPolicy
from . import serializers as s


class HealingPolicyViewSet(ServiceModelViewSet):
    """Self-healing policies: which containers the portal restarts or recreates when they exit or turn
    unhealthy, with a crash-loop backoff and limit (administrators of the environment)."""

    queryset = HealingPolicy.objects.select_related("environment", "engine")
    serializer_class = s.HealingPolicySerializer
    filterset_class = HealingPolicyFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_policy(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_policy(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_policy(self.actor, instance)


class HealingEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """The healing history: each exit or unhealthy turn a policy covered, and what the portal did
    (launched a job, skipped it and why, waited out the backoff, gave up on a crash loop)."""

    queryset = HealingEvent.objects.select_related("environment", "engine", "job")
    serializer_class = s.HealingEventSerializer
    filterset_class = HealingEventFilterSet
    ordering_fields = ["created", "decided"]
