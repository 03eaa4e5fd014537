from django.apps import AppConfig


class ContainersConfig(AppConfig):
    name = "ops_portal.containers"
    label = "containers"
    verbose_name = "Containers"
