from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "ops_portal.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Django's app loading: modules with models may be imported only once the registry is ready.
        from . import gating, streams  # noqa: F401, PLC0415 — the approval receiver, the live streams
