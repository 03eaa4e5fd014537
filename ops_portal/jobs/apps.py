from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "ops_portal.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        # Django's app loading: modules with models may be imported only once the registry is ready.
        # the approval receivers (queue on approval, the dry run on request), the live streams
        from . import dry_runs, gating, streams  # noqa: F401, PLC0415
