"""Notification events the jobs app sends (loaded at start-up by core.declarations)."""
from ops_portal.notifications.registry import register

register("job.finished", "A job ended, whatever the outcome")
register("job.succeeded", "A job succeeded", also=("job.finished",))
register("job.failed", "A job failed", also=("job.finished",))
