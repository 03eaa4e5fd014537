from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "ops_portal.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import streams  # noqa: F401, PLC0415 — registers the approvals stream
