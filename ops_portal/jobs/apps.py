from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "ops_portal.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self):
        from . import approval, streams  # noqa: F401
        from .actions import load_all

        load_all()
