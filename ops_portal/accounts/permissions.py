"""The permission layer: one place that answers "may this user do this, and where?".

Views, the API, websocket consumers and tasks all ask here. Deny by default: a user sees and
changes only what their role bindings (direct or through a team) allow, per environment.
Models declare `environment_path`, the lookup from the model to its Environment ("pk" for the
Environment itself, None for global objects that only all-environment bindings reach).
"""
from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import Q

from .choices import ROLE_ACTIONS, Action


@dataclass(frozen=True)
class Scope:
    """Where an action is allowed: everywhere, or in a set of environment ids."""

    everywhere: bool
    environment_ids: frozenset

    def allows(self, environment_id) -> bool:
        if self.everywhere:
            return True
        return environment_id is not None and environment_id in self.environment_ids

    @property
    def empty(self) -> bool:
        return not self.everywhere and not self.environment_ids


NOWHERE = Scope(False, frozenset())
EVERYWHERE = Scope(True, frozenset())
_CACHE_ATTR = "_ops_portal_scopes"


def _compute_scopes(user):
    from .models import RoleBinding  # noqa: PLC0415 — models import this module (RestrictedQuerySet)

    rows = (
        RoleBinding.objects.filter(Q(user=user) | Q(team__members=user))
        .values_list("role", "environment_id")
        .distinct()
    )
    everywhere = set()
    per_env = {action: set() for action in Action.values}
    for role, environment_id in rows:
        for action in ROLE_ACTIONS.get(role, ()):
            if environment_id is None:
                everywhere.add(action)
            else:
                per_env[action].add(environment_id)
    return {
        action: EVERYWHERE if action in everywhere else Scope(False, frozenset(per_env[action]))
        for action in Action.values
    }


def _scopes_of(user):
    if user is None or not user.is_authenticated or not user.is_active:
        return dict.fromkeys(Action.values, NOWHERE)
    if user.is_superuser:
        return dict.fromkeys(Action.values, EVERYWHERE)
    return _compute_scopes(user)


def scope_for(user, action, *, fresh=False) -> Scope:
    """The scope of `action` for `user`, cached on the user object unless fresh=True."""
    if action not in Action.values:
        raise ValueError(f"unknown action {action!r}")
    if user is None or not user.is_authenticated or not user.is_active or user.is_superuser:
        return _scopes_of(user)[action]
    scopes = None if fresh else getattr(user, _CACHE_ATTR, None)
    if scopes is None:
        scopes = _compute_scopes(user)
        setattr(user, _CACHE_ATTR, scopes)
    return scopes[action]


def forget(user):
    """Drop cached scopes (after the user's bindings changed)."""
    if user is not None and hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def environment_id_of(obj):
    """Follow the model's environment_path from an instance to an environment id (or None)."""
    path = getattr(type(obj), "environment_path", None)
    if path is None:
        return None
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    target = obj
    for hop in hops:
        try:
            target = getattr(target, hop)
        except ObjectDoesNotExist:  # an unsaved object without its parent yet
            return None
        if target is None:
            return None
    return getattr(target, f"{last}_id")


def restrict(queryset, user, action):
    """Filter a queryset down to the rows `user` may perform `action` on."""
    scope = scope_for(user, action)
    if scope.everywhere:
        return queryset
    path = queryset.model.environment_path
    if path is None or not scope.environment_ids:
        return queryset.none()
    return queryset.filter(**{f"{path}__in": scope.environment_ids})


def can(user, action, environment=None) -> bool:
    """May `user` do `action` in `environment` (an Environment, an id, or None for global)?"""
    environment_id = getattr(environment, "pk", environment)
    return scope_for(user, action).allows(environment_id)


def can_on(user, action, obj) -> bool:
    return can(user, action, environment_id_of(obj))


def require(user, action, environment=None):
    if not can(user, action, environment):
        raise PermissionDenied(f"You may not {action} here.")


def require_on(user, action, obj):
    if not can_on(user, action, obj):
        raise PermissionDenied(f"You may not {action} {obj}.")


class Authority:
    """What one user may do, read from the database once and then frozen.

    Decisions about a change use the rights its author held before it: a change that creates a
    binding, adds someone to a team or makes a host the portal's own machine must not count
    towards its own permission. `Authority(None)` is the portal itself, which may do anything.
    """

    def __init__(self, user):
        self.user = user
        self._scopes = None if user is None else _scopes_of(user)

    def __repr__(self):
        return f"<Authority of {self.user or 'the portal'}>"

    def scope(self, action) -> Scope:
        if action not in Action.values:
            raise ValueError(f"unknown action {action!r}")
        return EVERYWHERE if self._scopes is None else self._scopes[action]

    def can(self, action, environment=None) -> bool:
        return self.scope(action).allows(getattr(environment, "pk", environment))

    def can_on(self, action, obj) -> bool:
        return self.can(action, environment_id_of(obj))

    def everywhere(self, action) -> bool:
        return self.scope(action).everywhere

    def holds_role(self, role, environment=None) -> bool:
        """Does the user hold every action of `role` in `environment` (None: in all of them)?"""
        return all(self.can(action, environment) for action in ROLE_ACTIONS.get(role, ()))

    def require_on(self, action, obj, message=None):
        if not self.can_on(action, obj):
            raise PermissionDenied(message or f"You may not {action} {obj._meta.verbose_name} {obj}.")


def holders(action, environment=None):
    """Active users who may do `action` in `environment` (an Environment, an id, or None: global),
    through their own bindings, a team's or as superusers."""
    from django.contrib.auth import get_user_model  # noqa: PLC0415 — models import this module

    environment_id = getattr(environment, "pk", environment)
    roles = [role for role, actions in ROLE_ACTIONS.items() if action in actions]
    where = Q(environment__isnull=True) if environment_id is None else (
        Q(environment__isnull=True) | Q(environment_id=environment_id))
    bound = Q(role_bindings__in=_bindings(roles, where)) | Q(ops_teams__role_bindings__in=_bindings(roles, where))
    return get_user_model().objects.filter(Q(is_superuser=True) | bound, is_active=True).distinct()


def _bindings(roles, where):
    from .models import RoleBinding  # noqa: PLC0415 — models import this module (RestrictedQuerySet)

    return RoleBinding.objects.filter(where, role__in=roles)


def has_any(user, action) -> bool:
    """Does the user hold `action` in at least one environment?"""
    return not scope_for(user, action).empty


class RestrictedQuerySet(models.QuerySet):
    def restrict(self, user, action=Action.VIEW):
        return restrict(self, user, action)
