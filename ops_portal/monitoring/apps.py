from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "ops_portal.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import streams  # noqa: F401, PLC0415 — registers the alerts stream
