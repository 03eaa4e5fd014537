"""The processes stream: a scan stored for a host, in every environment the user may view (or one)."""
from ops_portal.core import streams

from .store import group


@streams.register
class ProcessesStream(streams.Stream):
    """{} or {"environment": name}: {"kind": "scan", "host", "host_name", "scan", "time",
    "process_count", "new", "gone", "restarted", "error"} as each host's scan is stored."""

    name = "processes"

    def groups(self, user, params):
        return streams.environment_groups(user, params, group)
