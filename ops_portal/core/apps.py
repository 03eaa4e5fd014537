from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "ops_portal.core"
    label = "core"
    verbose_name = "Core"

    def ready(self):
        # Django's app loading: modules that use models are imported once the registry is ready.
        from . import declarations, metrics, status  # noqa: F401, PLC0415 — status stream, task metrics

        declarations.load()
        post_migrate.connect(_create_builtin_schedules)


def _create_builtin_schedules(sender, **kwargs):
    if sender.label != "django_celery_beat":  # once per migrate, when beat's tables exist
        return
    from .periodic import ensure_builtins  # noqa: PLC0415 — imports beat's models: not from apps.py

    ensure_builtins()
