from django.apps import AppConfig

DRIFT_SCHEDULE = "configs: drift check"


class ConfigsConfig(AppConfig):
    name = "ops_portal.configs"
    label = "configs"
    verbose_name = "Configuration"

    def ready(self):
        from ops_portal.core import periodic

        from . import audit_actions  # noqa: F401

        periodic.register(DRIFT_SCHEDULE, "configs.check_drift", 900,
                          "Launch one config.drift job per environment with enabled configuration templates "
                          "(skipped where the previous one has not ended).")
