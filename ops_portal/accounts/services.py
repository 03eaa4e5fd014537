"""Changes to users, teams, environments, role bindings and tokens. Each is audited."""
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, snapshot

from .choices import Action
from .models import APIToken, Environment, RoleBinding, Team, hash_token
from .permissions import forget, require

User = get_user_model()
USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active")


def _require_global_admin(actor):
    if actor.user is not None:
        require(actor.user, Action.MANAGE, None)


# Environments and teams ---------------------------------------------------------------------

def create_environment(actor, **fields):
    return create_object(actor, Environment, fields)


def update_environment(actor, environment, **fields):
    return update_object(actor, environment, fields)


def delete_environment(actor, environment):
    """Only administrators of all environments remove one (its own admins could lock others out)."""
    _require_global_admin(actor)
    delete_object(actor, environment)


def create_team(actor, *, members=(), **fields):
    return create_object(actor, Team, fields, m2m={"members": list(members)})


def update_team(actor, team, *, members=None, **fields):
    m2m = {"members": list(members)} if members is not None else None
    team = update_object(actor, team, fields, m2m=m2m)
    for member in team.members.all():
        forget(member)
    return team


def delete_team(actor, team):
    delete_object(actor, team)


# Role bindings ------------------------------------------------------------------------------

def create_binding(actor, *, role, environment=None, user=None, team=None):
    return create_object(actor, RoleBinding, {"role": role, "environment": environment, "user": user, "team": team})


def delete_binding(actor, binding):
    delete_object(actor, binding)


# Users --------------------------------------------------------------------------------------

def _user_snapshot(user):
    return snapshot(user, exclude=("password", "last_login", "user_permissions", "groups"))


def create_user(actor, *, password=None, **fields):
    """Create a user; without a password the user cannot sign in until one is set."""
    unknown = set(fields) - set(USER_FIELDS) - {"is_superuser", "is_staff"}
    if unknown:
        raise ValueError(f"unknown user fields: {sorted(unknown)}")
    with transaction.atomic():
        _require_global_admin(actor)
        if fields.get("is_superuser") and actor.user is not None and not actor.user.is_superuser:
            raise PermissionDenied("Only a superuser may create another superuser.")
        user = User(**fields)
        if password:
            validate_password(password, user)
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save()
        record(actor, "user.create", user, after=_user_snapshot(user))
    return user


def update_user(actor, user, **fields):
    unknown = set(fields) - set(USER_FIELDS)
    if unknown:
        raise ValueError(f"unknown user fields: {sorted(unknown)}")
    with transaction.atomic():
        _require_global_admin(actor)
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_superuser and actor.user is not None and not actor.user.is_superuser:
            raise PermissionDenied("Only a superuser may change a superuser.")
        before = _user_snapshot(user)
        for name, value in fields.items():
            setattr(user, name, value)
        user.full_clean(exclude=["password"])
        user.save()
        after = _user_snapshot(user)
        if before != after:
            action = "user.deactivate" if before["is_active"] and not after["is_active"] else "user.update"
            record(actor, action, user, before=before, after=after)
    return user


def set_password(actor, user, password):
    """An administrator sets another user's password."""
    with transaction.atomic():
        _require_global_admin(actor)
        if user.is_superuser and actor.user is not None and not actor.user.is_superuser:
            raise PermissionDenied("Only a superuser may change a superuser.")
        validate_password(password, user)
        user.set_password(password)
        user.save(update_fields=["password"])
        record(actor, "user.set_password", user)


def change_own_password(actor, user, old_password, new_password):
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["The current password is not correct."]})
    validate_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        record(actor, "user.change_password", user)


# API tokens ---------------------------------------------------------------------------------

def create_token(actor, *, name, expires=None):
    """Create a token for the acting user. Returns (token, key); the key is never stored."""
    user = actor.user
    if expires is not None and expires <= timezone.now():
        raise ValidationError({"expires": ["The expiry must be in the future."]})
    key = APIToken.generate_key()
    with transaction.atomic():
        token = APIToken(user=user, name=name, key_hash=hash_token(key), key_prefix=key[:10], expires=expires)
        token.full_clean()
        token.save()
        record(actor, "token.create", token, after=snapshot(token, exclude=("key_hash",)))
    return token, key


def revoke_token(actor, token):
    if actor.user is None or token.user_id != actor.user_id:
        raise PermissionDenied("You may revoke only your own tokens.")
    with transaction.atomic():
        token = APIToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked is None:
            token.revoked = timezone.now()
            token.save(update_fields=["revoked"])
            record(actor, "token.revoke", token)
    return token
