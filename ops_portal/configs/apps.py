from django.apps import AppConfig


class ConfigsConfig(AppConfig):
    name = "ops_portal.configs"
    label = "configs"
    verbose_name = "Configuration"
