from django.apps import AppConfig


class PlaybooksConfig(AppConfig):
    name = "ops_portal.playbooks"
    label = "playbooks"
    verbose_name = "Playbooks"
