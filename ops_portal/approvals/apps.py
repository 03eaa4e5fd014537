from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "ops_portal.approvals"
    label = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from . import streams  # noqa: F401
