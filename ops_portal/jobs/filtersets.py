import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import JobState
from .models import FreezeWindow, Job, JobTarget, JobTemplate


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
    target_kind = django_filters.CharFilter(method="filter_target", help_text="With target_id: jobs that acted on "
                                            "that object (host, container, service, engine, program, process).")
    target_id = django_filters.NumberFilter(method="filter_target")
    system = django_filters.BooleanFilter(method="filter_system",
                                          help_text="true: only the portal's own periodic jobs; false: only people's.")
    since = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="lt")

    class Meta:
        model = Job
        fields = ["environment", "state", "action", "template", "created_by", "host", "target_kind", "target_id",
                  "system", "since", "until"]

    def filter_system(self, queryset, name, value):
        return queryset.system() if value else queryset.by_people()

    def filter_target(self, queryset, name, value):
        """Both parts together, once (the filter of the other part does nothing)."""
        kind, ref_id = self.form.cleaned_data.get("target_kind"), self.form.cleaned_data.get("target_id")
        if name != "target_id" or ref_id is None or not kind:
            return queryset
        return queryset.filter(pk__in=JobTarget.objects.filter(kind=kind, ref_id=ref_id).values("job_id"))

    def filter_host(self, queryset, name, value):
        return queryset.filter(targets__kind="host", targets__ref_id=value).distinct()


class FreezeWindowFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")

    class Meta:
        model = FreezeWindow
        fields = ["environment"]
