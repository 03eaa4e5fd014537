import django_filters

from ops_portal.core.api.filters import PortalFilterSet

from .choices import RequestState
from .models import ApprovalPolicy, ApprovalRequest


class ApprovalPolicyFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")

    class Meta:
        model = ApprovalPolicy
        fields = ["environment", "enabled"]


class ApprovalRequestFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    state = django_filters.MultipleChoiceFilter(choices=RequestState.choices)
    requested_by = django_filters.CharFilter(field_name="requested_by_name")
    subject_type = django_filters.CharFilter()
    subject_id = django_filters.NumberFilter()

    class Meta:
        model = ApprovalRequest
        fields = ["environment", "state", "requested_by", "subject_type", "subject_id"]
