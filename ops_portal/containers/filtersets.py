import django_filters
from django.db import connection
from django.db.models import Q

from ops_portal.core.api.filters import PortalFilterSet

from .models import AllowedHostPath, Container, Engine, Image, Network, Node, Service, Stack, Volume


class _EngineScoped(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="engine__environment__name")
    engine = django_filters.CharFilter(field_name="engine__name")


def _label_filter(queryset, name, value):
    """key or key=value."""
    key, has_value, wanted = value.partition("=")
    if connection.vendor == "postgresql":
        return queryset.filter(labels__contains={key: wanted}) if has_value else queryset.filter(labels__has_key=key)
    rows = [row.pk for row in queryset.only("pk", "labels") if key in (row.labels or {})
            and (not has_value or row.labels[key] == wanted)]
    return queryset.filter(pk__in=rows)


class EngineFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Engine
        fields = ["environment", "name", "transport", "state", "enabled"]


class ContainerFilterSet(_EngineScoped):
    name = django_filters.CharFilter(lookup_expr="icontains")
    host = django_filters.NumberFilter(field_name="host_id", help_text="Containers on this inventory host (id).")
    image = django_filters.CharFilter(lookup_expr="icontains")
    label = django_filters.CharFilter(method="filter_label", max_length=400)
    service = django_filters.CharFilter(field_name="service_name")
    search = django_filters.CharFilter(method="filter_search", max_length=200)

    class Meta:
        model = Container
        fields = ["environment", "engine", "state", "health", "image", "name", "label", "service", "stack", "host"]

    def filter_label(self, queryset, name, value):
        return _label_filter(queryset, name, value)

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(image__icontains=value) | Q(docker_id__startswith=value))


class ServiceFilterSet(_EngineScoped):
    name = django_filters.CharFilter(lookup_expr="icontains")
    image = django_filters.CharFilter(lookup_expr="icontains")
    label = django_filters.CharFilter(method="filter_label", max_length=400)

    class Meta:
        model = Service
        fields = ["environment", "engine", "name", "image", "mode", "stack", "publish_mode", "label"]

    def filter_label(self, queryset, name, value):
        return _label_filter(queryset, name, value)


class ImageFilterSet(_EngineScoped):
    class Meta:
        model = Image
        fields = ["environment", "engine"]


class NetworkFilterSet(_EngineScoped):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Network
        fields = ["environment", "engine", "name", "driver", "scope"]


class VolumeFilterSet(_EngineScoped):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Volume
        fields = ["environment", "engine", "name", "driver"]


class NodeFilterSet(_EngineScoped):
    class Meta:
        model = Node
        fields = ["environment", "engine", "role", "state", "availability"]


class StackFilterSet(_EngineScoped):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Stack
        fields = ["environment", "engine", "name"]


class AllowedHostPathFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")

    class Meta:
        model = AllowedHostPath
        fields = ["environment"]
