import django_filters
from django.contrib.auth import get_user_model

from ops_portal.core.api.filters import PortalFilterSet

from .choices import Role
from .models import APIToken, Environment, RoleBinding, Team


class EnvironmentFilterSet(PortalFilterSet):
    name = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Environment
        fields = ["name", "is_production"]


class TeamFilterSet(PortalFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    member = django_filters.CharFilter(field_name="members__username")

    class Meta:
        model = Team
        fields = ["name", "member"]


class RoleBindingFilterSet(PortalFilterSet):
    user = django_filters.CharFilter(field_name="user__username")
    team = django_filters.CharFilter(field_name="team__name")
    environment = django_filters.CharFilter(field_name="environment__name")
    role = django_filters.ChoiceFilter(choices=Role.choices)
    all_environments = django_filters.BooleanFilter(field_name="environment", lookup_expr="isnull")

    class Meta:
        model = RoleBinding
        fields = ["user", "team", "environment", "role", "all_environments"]


class UserFilterSet(PortalFilterSet):
    username = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = get_user_model()
        fields = ["username", "is_active"]


class APITokenFilterSet(PortalFilterSet):
    revoked = django_filters.BooleanFilter(field_name="revoked", lookup_expr="isnull", exclude=True)

    class Meta:
        model = APIToken
        fields = ["revoked"]
