"""Notification events the monitoring app sends (loaded at start-up by core.declarations)."""
from ops_portal.notifications.registry import register

register("alert.firing", "An alert started firing")
register("alert.resolved", "An alert resolved")
