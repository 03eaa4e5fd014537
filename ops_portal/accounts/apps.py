from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ops_portal.accounts"
    label = "accounts"
    verbose_name = "Access"

    def ready(self):
        from . import schema, signals  # noqa: F401  (registers schema extensions, receivers)
