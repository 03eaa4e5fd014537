"""The approvals inbox stream: request changes in the environments where the user may approve."""
from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core import streams

from .services import group


@streams.register
class ApprovalsStream(streams.Stream):
    name = "approvals"

    def groups(self, user, params):
        environments = restrict(Environment.objects.all(), user, Action.APPROVE)
        return [group(pk) for pk in environments.values_list("pk", flat=True)]
