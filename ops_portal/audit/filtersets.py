import django_filters

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import scope_for
from ops_portal.core.api.filters import PortalFilterSet
from ops_portal.core.choices import Source

from .models import AuditEvent


class AuditEventFilterSet(PortalFilterSet):
    actor = django_filters.CharFilter(field_name="actor_name")
    action = django_filters.CharFilter()
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    environment = django_filters.CharFilter(method="filter_environment")
    source = django_filters.ChoiceFilter(choices=Source.choices)
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="lt")
    q = django_filters.CharFilter(field_name="object_repr", lookup_expr="icontains")

    class Meta:
        model = AuditEvent
        fields = []

    def filter_environment(self, queryset, name, value):
        """Rows of the environment of that name, by its id (indexed: a viewer asking for an environment
        it cannot see gets nothing at once, not after a walk through every row it can see); rows of
        an environment deleted since keep only its name."""
        environment = Environment.objects.filter(name=value).values_list("pk", flat=True).first()
        if environment is None:
            return queryset.filter(environment_name=value)
        user = getattr(self.request, "user", None)
        if user is not None and not scope_for(user, Action.VIEW).allows(environment):
            # An empty answer without asking PostgreSQL: given "environment_id IN (a) AND
            # environment_id = b" it plans a parallel scan of every row before finding the
            # condition false (368 ms of JIT and workers at 10 million rows).
            return queryset.none()
        return queryset.filter(environment_id=environment)
