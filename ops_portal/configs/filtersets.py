import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .models import ConfigTemplate, DriftReport


class ConfigTemplateFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")
    path = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = ConfigTemplate
        fields = ["environment", "name", "path", "enabled"]


class DriftReportFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="config__environment__name")
    host = django_filters.NumberFilter(field_name="host_id")
    config = django_filters.NumberFilter(field_name="config_id")
    drifted = django_filters.BooleanFilter()
    unknown = django_filters.BooleanFilter(field_name="drifted", lookup_expr="isnull",
                                           label="The check could not tell (see error)")

    class Meta:
        model = DriftReport
        fields = ["environment", "host", "config", "drifted", "unknown"]
