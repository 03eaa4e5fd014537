import django_filters
from django.db.models import Q

from ops_portal.core.api.filters import PortalFilterSet

from .choices import STATES, OwnerKind
from .models import Process, ProcessScan

MAX_TEXT = 200


class ProcessFilterSet(PortalFilterSet):
    host = django_filters.NumberFilter(field_name="host_id")
    host_name = django_filters.CharFilter(field_name="host__name")
    environment = django_filters.CharFilter(field_name="host__environment__name")
    user = django_filters.CharFilter(max_length=64)
    state = django_filters.MultipleChoiceFilter(choices=sorted(STATES.items()))
    owner_kind = django_filters.ChoiceFilter(choices=OwnerKind.choices[1:], help_text="supervisord, systemd, pm2 "
                                             "or container")
    owner_name = django_filters.CharFilter(max_length=255)
    unowned = django_filters.BooleanFilter(method="filter_unowned", help_text="Only processes no manager owns.")
    name = django_filters.CharFilter(max_length=128)
    q = django_filters.CharFilter(method="filter_text", max_length=MAX_TEXT,
                                  help_text="Text in the name or the command line (case-insensitive).")
    port = django_filters.NumberFilter(method="filter_port", min_value=1, max_value=65535,
                                       help_text="A listening TCP port.")
    pid = django_filters.NumberFilter(min_value=0, max_value=4194304)
    container = django_filters.CharFilter(field_name="container_id", lookup_expr="startswith", max_length=64)

    class Meta:
        model = Process
        fields = ["host", "host_name", "environment", "user", "state", "owner_kind", "owner_name", "unowned", "name",
                  "q", "port", "pid", "container"]

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(command__icontains=value)) if value else queryset

    def filter_port(self, queryset, name, value):
        return queryset.filter(port_list__contains=f" {int(value)} ") if value is not None else queryset

    def filter_unowned(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(owner_kind="") if value else queryset.exclude(owner_kind="")


class ProcessScanFilterSet(PortalFilterSet):
    host = django_filters.NumberFilter(field_name="host_id")
    environment = django_filters.CharFilter(field_name="host__environment__name")
    failed = django_filters.BooleanFilter(method="filter_failed")
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")

    class Meta:
        model = ProcessScan
        fields = ["host", "environment", "failed", "since", "until"]

    def filter_failed(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.exclude(error="") if value else queryset.filter(error="")
