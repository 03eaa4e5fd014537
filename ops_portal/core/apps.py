from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "ops_portal.core"
    label = "core"
    verbose_name = "Core"

    def ready(self):
        from . import status  # noqa: F401  (registers the status stream)
