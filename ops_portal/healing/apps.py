from django.apps import AppConfig


class HealingConfig(AppConfig):
    name = "ops_portal.healing"
    label = "healing"
    verbose_name = "Self-healing"

    def ready(self):
        # Django's app loading: the receiver uses models, so it is connected once the registry is ready.
        from ops_portal.containers.signals import container_changed  # noqa: PLC0415 — see above

        from .receivers import on_container_changed  # noqa: PLC0415 — see above

        container_changed.connect(on_container_changed, dispatch_uid="healing.on_container_changed")
