import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import Metric, Outcome
from .models import Evaluation, ScalingPolicy


class ScalingPolicyFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="engine__environment__name")
    engine = django_filters.CharFilter(field_name="engine__name")
    service = django_filters.CharFilter(field_name="service_name")
    metric = django_filters.ChoiceFilter(choices=Metric.choices)

    class Meta:
        model = ScalingPolicy
        fields = ["environment", "engine", "service", "metric", "mode", "enabled"]


class EvaluationFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="policy__engine__environment__name")
    policy = django_filters.NumberFilter(field_name="policy_id")
    service = django_filters.CharFilter(field_name="policy__service_name")
    outcome = django_filters.MultipleChoiceFilter(choices=Outcome.choices)
    scaled = django_filters.BooleanFilter(field_name="job", lookup_expr="isnull", exclude=True)
    since = django_filters.IsoDateTimeFilter(field_name="created", lookup_expr="gte")

    class Meta:
        model = Evaluation
        fields = ["environment", "policy", "service", "outcome", "scaled", "since"]
