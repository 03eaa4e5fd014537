from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet

from .. import registry, services
from ..filtersets import DeliveryFilterSet, NotificationChannelFilterSet
from ..models import Delivery, NotificationChannel
from . import serializers as s


class NotificationChannelViewSet(ServiceModelViewSet):
    """Webhook and email channels. Secrets are write-only: stored encrypted, shown once by rotate-secret."""

    queryset = NotificationChannel.objects.select_related("environment")
    serializer_class = s.NotificationChannelSerializer
    filterset_class = NotificationChannelFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_channel(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_channel(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_channel(self.actor, instance)

    @extend_schema(request=s.RotateSecretSerializer, responses=s.RotatedSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """Replace the signing secret; the answer holds the new secret, which is never shown again."""
        serializer = s.RotateSecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel, secret = services.rotate_secret(self.actor, self.get_object(),
                                                 serializer.validated_data.get("secret"))
        response = Response({"id": channel.pk, "secret": secret, "secret_rotated": channel.secret_rotated})
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses={201: s.DeliverySerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a "test" notification to this channel now."""
        delivery = services.send_test(self.actor, self.get_object())
        return Response(s.DeliverySerializer(delivery).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.NotificationEventSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def events(self, request):
        """The events channels can subscribe to."""
        return Response([{"name": e.name, "description": e.description, "also": list(e.also)}
                         for e in (registry.EVENTS[name] for name in registry.all_events())])


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Notifications on their way to channels, with every attempt's outcome."""

    queryset = Delivery.objects.select_related("channel")
    serializer_class = s.DeliverySerializer
    filterset_class = DeliveryFilterSet
    ordering_fields = ["created", "delivered_at", "next_attempt_at", "attempts"]

    @extend_schema(request=None, responses={202: s.DeliverySerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Try a failed delivery again, with a fresh series of attempts."""
        delivery = services.retry_delivery(self.actor, self.get_object())
        return Response(s.DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
