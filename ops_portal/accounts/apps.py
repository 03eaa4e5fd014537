from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ops_portal.accounts"
    label = "accounts"
    verbose_name = "Access"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import authority, schema, signals  # noqa: F401, PLC0415 — announcements, schema extensions, receivers
