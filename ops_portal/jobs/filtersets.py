import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import JobState
from .models import FreezeWindow, Job, JobTemplate


class JobTemplateFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = JobTemplate
        fields = ["environment", "name", "action", "enabled"]


class JobFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    state = django_filters.MultipleChoiceFilter(choices=JobState.choices)
    template = django_filters.CharFilter(field_name="template__name")
    created_by = django_filters.CharFilter(field_name="created_by_name")
    host = django_filters.NumberFilter(method="filter_host")
    system = django_filters.BooleanFilter(method="filter_system",
                                          help_text="true: only the portal's own periodic jobs; false: only people's.")
    since = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = Job
        fields = ["environment", "state", "action", "template", "created_by", "host", "system", "since", "until"]

    def filter_system(self, queryset, name, value):
        return queryset.system() if value else queryset.by_people()

    def filter_host(self, queryset, name, value):
        return queryset.filter(targets__kind="host", targets__ref_id=value).distinct()


class FreezeWindowFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")

    class Meta:
        model = FreezeWindow
        fields = ["environment"]
