"""Built-in periodic tasks of the notifications app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

RETRY_DUE_SCHEDULE = "notifications: retry due deliveries"

# Brings back deliveries whose message was lost or whose worker died.
register(RETRY_DUE_SCHEDULE, "notifications.retry_due", 60,
         "Re-queue pending notification deliveries that are overdue and not in flight.")
