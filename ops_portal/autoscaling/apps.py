from django.apps import AppConfig


class AutoscalingConfig(AppConfig):
    name = "ops_portal.autoscaling"
    label = "autoscaling"
    verbose_name = "Autoscaling"
