"""The Django admin as a read-only browser for superusers.

Every change in the portal goes through its service functions, which check permissions and write
the audit log in the same transaction; the admin would bypass both, so it may look but not touch.
"""
from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
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
