from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "ops_portal.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
