from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "ops_portal.notifications"
    label = "notifications"
    verbose_name = "Notifications"
