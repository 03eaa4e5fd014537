"""Notification events the approvals app sends (loaded at start-up by core.declarations)."""
from ops_portal.notifications.registry import register

register("approval.requested", "A job waits for approval")
