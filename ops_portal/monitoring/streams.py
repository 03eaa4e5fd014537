"""The alerts stream: alert changes in every environment the user may view (or one)."""
from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core import streams

from .services import group


@streams.register
class AlertsStream(streams.Stream):
    """{} or {"environment": name}: alerts firing, acknowledged and resolved, as they happen."""

    name = "alerts"

    def groups(self, user, params):
        environments = restrict(Environment.objects.all(), user, Action.VIEW)
        if "environment" in params:
            environments = environments.filter(name=str(params["environment"]))
            if not environments.exists():
                raise streams.StreamDenied("You may not view that environment.")
        return [group(pk) for pk in environments.values_list("pk", flat=True)]
