import django_filters

from ops_portal.containers.models import Container
from ops_portal.core.api.filters import PortalFilterSet

from .models import HealingEvent, HealingPolicy


class HealingPolicyFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    engine = django_filters.CharFilter(field_name="engine__name")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = HealingPolicy
        fields = ["environment", "engine", "name", "enabled"]


class HealingEventFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    engine = django_filters.CharFilter(field_name="engine__name")
    container = django_filters.NumberFilter(method="filter_container",
                                            help_text="A container's id: its history by engine and name (recreates "
                                                      "keep it).")
    container_name = django_filters.CharFilter()
    policy = django_filters.CharFilter(field_name="policy_name")

    class Meta:
        model = HealingEvent
        fields = ["environment", "engine", "container", "container_name", "state", "trigger", "policy"]

    def filter_container(self, queryset, name, value):


        row = Container.objects.filter(pk=value).values_list("engine_id", "name").first()
        if row is None:
            return queryset.none()
        return queryset.filter(engine_id=row[0], container_name=row[1])
