"""The programs stream: observed changes of programs (state, restarts, crash loop) in every
environment the user may view (or one), for the live program pages."""
from ops_portal.core import streams


def group(environment_id):
    """The Channels group of an environment's program changes."""
    return f"programs.env.{environment_id}"


@streams.register
class ProgramsStream(streams.Stream):
    """{} or {"environment": name}: a program's observed state as each refresh or action stores it."""

    name = "programs"

    def groups(self, user, params):
        return streams.environment_groups(user, params, group)
