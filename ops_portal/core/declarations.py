"""What each app declares, found by module name and imported once at start-up.

An app declares its named audit actions in `<app>/audit_actions.py`, the notification events it
sends in `<app>/notification_events.py` and its built-in periodic tasks in
`<app>/periodic_tasks.py`, each calling the registry it feeds (audit.registry,
notifications.registry, core.periodic). Any of the three may be missing. The registries hold no
declarations of their own apps' users; this loader is the only place that imports them all.
"""
import importlib
import importlib.util

from django.apps import apps

MODULES = ("audit_actions", "notification_events", "periodic_tasks")


def load(app_configs=None):
    """Import every declaration module of the installed apps; return the modules' names."""
    loaded = []
    for app_config in app_configs if app_configs is not None else apps.get_app_configs():
        for module in MODULES:
            name = f"{app_config.name}.{module}"
            if importlib.util.find_spec(name) is not None:  # an app without the module declares nothing
                importlib.import_module(name)
                loaded.append(name)
    return loaded
