"""The status stream: system messages, per-environment notices and answers from workers.

It proves the whole live path: browser -> ASGI -> Redis -> Celery worker -> Redis -> ASGI -> browser.
Groups: status.system (everyone signed in), status.user.<id> (one user), status.env.<id>
(users who may view that environment).
"""
from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can

from . import streams


def user_group(user_id):
    return f"status.user.{user_id}"


def environment_group(environment_id):
    return f"status.env.{environment_id}"


SYSTEM_GROUP = "status.system"


@streams.register
class StatusStream(streams.Stream):
    name = "status"

    def groups(self, user, params):
        """Without parameters: system and personal messages; with {"environment": name}: that
        environment's messages only."""
        env_name = params.get("environment")
        if env_name is None:
            return [SYSTEM_GROUP, user_group(user.pk)]
        environment = Environment.objects.filter(name=str(env_name)).first()
        # The same answer for "does not exist" and "not yours": no probing of names.
        if environment is None or not can(user, Action.VIEW, environment):
            raise streams.StreamDenied("You may not view that environment.")
        return [environment_group(environment.pk)]
