from django.apps import AppConfig


class PuppetConfig(AppConfig):
    name = "ops_portal.puppet"
    label = "puppet"
    verbose_name = "Puppet"
