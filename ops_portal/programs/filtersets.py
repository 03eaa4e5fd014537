import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import Manager, ProgramState
from .models import HostManager, Program


class ProgramFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="host__environment__name")
    host = django_filters.NumberFilter(field_name="host_id")
    host_name = django_filters.CharFilter(field_name="host__name")
    manager = django_filters.ChoiceFilter(choices=Manager.choices)
    state = django_filters.ChoiceFilter(choices=ProgramState.choices)
    crash_loop = django_filters.BooleanFilter()
    managed = django_filters.BooleanFilter()
    name = django_filters.CharFilter(lookup_expr="icontains", max_length=255)

    class Meta:
        model = Program
        fields = ["environment", "host", "host_name", "manager", "state", "crash_loop", "managed", "name"]


class HostManagerFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="host__environment__name")
    host = django_filters.NumberFilter(field_name="host_id")
    manager = django_filters.ChoiceFilter(choices=Manager.choices)
    available = django_filters.BooleanFilter()

    class Meta:
        model = HostManager
        fields = ["environment", "host", "manager", "available"]
