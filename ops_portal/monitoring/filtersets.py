import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import AlertState, Comparator, Metric, RuleKind, Severity, SubjectKind
from .models import Alert, AlertRule


class AlertRuleFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")
    kind = django_filters.ChoiceFilter(choices=RuleKind.choices)
    metric = django_filters.ChoiceFilter(choices=Metric.choices)
    comparator = django_filters.ChoiceFilter(choices=Comparator.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)

    class Meta:
        model = AlertRule
        fields = ["environment", "name", "kind", "metric", "comparator", "severity", "enabled"]


class AlertFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    state = django_filters.MultipleChoiceFilter(choices=AlertState.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    host = django_filters.NumberFilter(field_name="host_id")
    rule = django_filters.NumberFilter(field_name="rule_id")
    source = django_filters.CharFilter()
    subject_kind = django_filters.ChoiceFilter(choices=SubjectKind.choices)
    subject_id = django_filters.NumberFilter(min_value=1, max_value=2**63 - 1)
    subject_name = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="fired_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="fired_at", lookup_expr="lt")

    class Meta:
        model = Alert
        fields = ["environment", "state", "severity", "host", "rule", "source", "subject_kind", "subject_id",
                  "subject_name", "since", "until"]
