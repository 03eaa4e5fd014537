from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "ops_portal.inventory"
    label = "inventory"
    verbose_name = "Inventory"
