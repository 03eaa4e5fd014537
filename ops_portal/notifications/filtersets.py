import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import ChannelKind, DeliveryStatus
from .models import Delivery, NotificationChannel


class NotificationChannelFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")
    kind = django_filters.ChoiceFilter(choices=ChannelKind.choices)

    class Meta:
        model = NotificationChannel
        fields = ["environment", "name", "kind", "enabled"]


class DeliveryFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="channel__environment__name")
    channel = django_filters.NumberFilter(field_name="channel_id")
    status = django_filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)
    event = django_filters.CharFilter()

    class Meta:
        model = Delivery
        fields = ["environment", "channel", "status", "event"]
