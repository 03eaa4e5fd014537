"""What each app declares, found by module name and imported once at start-up.

An app declares its named audit actions in `<app>/audit_actions.py`, the notification events it
sends in `<app>/notification_events.py`, its built-in periodic tasks in `<app>/periodic_tasks.py`,
the target kinds it owns in `<app>/targets.py` and the actions jobs can run on them in
`<app>/job_actions.py`, and the state alert rule kinds it answers for in `<app>/alert_states.py`,
each calling the registry it feeds (audit.registry, notifications.registry, core.periodic,
core.targets, jobs.actions, monitoring.states). Any of them may be missing.
The registries hold no declarations of their own apps' users; this loader is the only place that
imports them all. Modules load kind by kind, in the order of MODULES (every target kind before the
first job action that acts on one).
"""
import importlib
import importlib.util

from django.apps import apps

MODULES = ("audit_actions", "notification_events", "periodic_tasks", "targets", "job_actions", "alert_states")


def load(app_configs=None):
    """Import every declaration module of the installed apps; return the modules' names."""
    loaded = []
    app_configs = list(app_configs if app_configs is not None else apps.get_app_configs())
    for module in MODULES:
        for app_config in app_configs:
            name = f"{app_config.name}.{module}"
            if importlib.util.find_spec(name) is not None:  # an app without the module declares nothing
                importlib.import_module(name)
                loaded.append(name)
    return loaded
