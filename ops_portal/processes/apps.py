from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "ops_portal.processes"
    label = "processes"
    verbose_name = "Processes"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import streams  # noqa: F401, PLC0415 — registers the processes stream
