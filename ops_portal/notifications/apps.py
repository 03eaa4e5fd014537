from django.apps import AppConfig

RETRY_DUE_SCHEDULE = "notifications: retry due deliveries"


class NotificationsConfig(AppConfig):
    name = "ops_portal.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        from ops_portal.core import periodic

        from . import audit_actions, registry  # noqa: F401

        # Created after migrate like the other built-ins; brings back deliveries whose message was
        # lost or whose worker died.
        periodic.register(RETRY_DUE_SCHEDULE, "notifications.retry_due", 60,
                          "Re-queue pending notification deliveries that are overdue and not in flight.")
