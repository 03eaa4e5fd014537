from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "ops_portal.core"
    label = "core"
    verbose_name = "Core"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import declarations, metrics, status  # noqa: F401  (status stream, task metrics)

        declarations.load()
        post_migrate.connect(_create_builtin_schedules)


def _create_builtin_schedules(sender, **kwargs):
    if sender.label != "django_celery_beat":  # once per migrate, when beat's tables exist
        return
    from .periodic import ensure_builtins

    ensure_builtins()
