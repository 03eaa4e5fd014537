"""The approvals inbox stream: request changes in the environments where the user may approve."""
from ops_portal.accounts.choices import Action
from ops_portal.core import streams

from .services import group


@streams.register
class ApprovalsStream(streams.Stream):
    name = "approvals"

    def groups(self, user, params):
        return streams.environment_groups(user, params, group, Action.APPROVE)
