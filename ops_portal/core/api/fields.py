"""Related fields that resolve only what the requesting user may see.

An object outside the user's view answers "does not exist", exactly like one that does not exist:
naming it in a request reveals nothing (no 403-versus-400 oracle).
"""
from rest_framework import serializers

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict


class VisibleOnlyMixin:
    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        if request is None:  # used by the portal's own code, not for a user
            return queryset
        return restrict(queryset, request.user, Action.VIEW)


class VisibleSlugRelatedField(VisibleOnlyMixin, serializers.SlugRelatedField):
    pass


class VisiblePrimaryKeyRelatedField(VisibleOnlyMixin, serializers.PrimaryKeyRelatedField):
    pass
