from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "ops_portal.containers"
    label = "containers"
    verbose_name = "Containers"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import health, streams  # noqa: F401, PLC0415 — the watcher's readiness check, the live streams
