from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "ops_portal.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from . import streams  # noqa: F401
