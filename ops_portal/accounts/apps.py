from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "ops_portal.accounts"
    label = "accounts"
    verbose_name = "Access"

    def ready(self):
        from . import audit_actions, authority, schema, signals  # noqa: F401  (registers actions, schema, receivers)
