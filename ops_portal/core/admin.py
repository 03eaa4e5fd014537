"""The Django admin as a read-only browser for superusers.

Every change in the portal goes through its service functions, which check permissions and write
the audit log in the same transaction; the admin would bypass both, so it may look but not touch.
Secrets (private keys, passphrases, webhook secrets, secret parameters, password and token hashes)
are not shown at all.
"""
from django.contrib import admin

from ops_portal.core.crypto import EncryptedTextField

# Never shown, even to superusers: what they would learn is a key to something else.
HIDDEN_FIELD_NAMES = {"password", "key_hash"}


def hidden_fields(model):
    """Encrypted columns, the model's declared secrets, password hashes and token hashes."""
    return sorted(
        field.name for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField) or field.name in HIDDEN_FIELD_NAMES
        or field.name in getattr(model, "audit_secret_fields", ())
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    def get_exclude(self, request, obj=None):
        return [*(super().get_exclude(request, obj) or ()), *hidden_fields(self.model)]

    def get_list_display(self, request):
        return [name for name in super().get_list_display(request) if name not in hidden_fields(self.model)]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


def register_read_only(*models, **options):
    for model in models:
        admin.site.register(model, type(f"{model.__name__}Admin", (ReadOnlyAdmin,), options.get(model.__name__, {})))
