from django.conf import settings
from django.db import models

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.core.choices import Source


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit row."""


class AuditQuerySet(RestrictedQuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit rows cannot be changed")

    def delete(self):
        raise AppendOnlyError("audit rows cannot be deleted (retention uses audit.services.prune)")

    def bulk_update(self, *args, **kwargs):
        raise AppendOnlyError("audit rows cannot be changed")


class AuditEvent(models.Model):
    """One change or named action. Append-only: the model and (on PostgreSQL) a trigger refuse
    updates and deletes."""

    time = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_constraint=False,
    )
    # A copy of the actor's name, kept when the user is renamed or removed.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True, db_index=True)
    object_id = models.CharField(max_length=64, blank=True, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True)
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    environment_name = models.CharField(max_length=63, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    extra = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    client_address = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["-time", "-pk"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "-time"]),
            # One environment's rows newest first, without walking the whole time index.
            models.Index(fields=["environment", "-time", "-id"], name="audit_env_time"),
            # The log's order. Holding the key, it walks a deep `offset` without reading the rows
            # (core.counting.page_rows) and serves the cursor pages' (time, id) bound.
            models.Index(fields=["-time", "-id"], name="audit_time_id"),
        ]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("audit rows cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit rows cannot be deleted")
