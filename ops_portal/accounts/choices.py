from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    APPROVER = "approver", "Approver"
    ADMIN = "admin", "Admin"


class Action(models.TextChoices):
    """What a role allows inside an environment."""

    VIEW = "view", "See inventory, jobs, logs and audit"
    OPERATE = "operate", "Launch jobs, restart, scale, stop"
    APPROVE = "approve", "Approve or reject other people's requests"
    MANAGE = "manage", "Manage templates, policies, schedules, credentials and bindings"


# The role -> action table. The only place that says what a role may do.
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Action.VIEW}),
    Role.OPERATOR: frozenset({Action.VIEW, Action.OPERATE}),
    Role.APPROVER: frozenset({Action.VIEW, Action.APPROVE}),
    Role.ADMIN: frozenset({Action.VIEW, Action.OPERATE, Action.APPROVE, Action.MANAGE}),
}
