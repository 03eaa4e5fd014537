from django.apps import AppConfig


class ProgramsConfig(AppConfig):
    name = "ops_portal.programs"
    label = "programs"
    verbose_name = "Programs"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import streams  # noqa: F401, PLC0415 — registers the programs stream
