import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .models import Project


class ProjectFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Project
        fields = ["environment", "name", "kind", "state"]
