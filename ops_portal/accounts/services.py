"""Changes to users, teams, environments, role bindings and tokens. Each is audited."""
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, snapshot

from .choices import ROLE_ACTIONS, Action
from .models import APIToken, Environment, RoleBinding, Team, hash_token
from .permissions import forget

User = get_user_model()
USER_FIELDS = ("username", "email", "first_name", "last_name", "is_active")
MANAGING_ROLES = [role for role, actions in ROLE_ACTIONS.items() if Action.MANAGE in actions]


def _require_global_admin(actor):
    if not actor.authority.everywhere(Action.MANAGE):
        raise PermissionDenied("Only administrators of all environments may do this.")


def _require_grant(authority, role, environment_id, why="grant or remove"):
    """Nobody grants more than they hold: the role's every action, and manage, where it applies."""
    if authority.can(Action.MANAGE, environment_id) and authority.holds_role(role, environment_id):
        return
    if environment_id is None:
        where = "all environments"
    else:
        where = f"environment {Environment.objects.filter(pk=environment_id).values_list('name', flat=True).first()}"
    raise PermissionDenied(f"You may not {why} the role {role} in {where}: only its administrators, "
                           f"and only roles they hold there.")


# Environments and teams ---------------------------------------------------------------------

def create_environment(actor, **fields):
    return create_object(actor, Environment, fields)


def update_environment(actor, environment, **fields):
    return update_object(actor, environment, fields)


def delete_environment(actor, environment):
    """Only administrators of all environments remove one (its own admins could lock others out)."""
    _require_global_admin(actor)
    delete_object(actor, environment)


def _require_team_grants(authority, team):
    for role, environment_id in team.role_bindings.values_list("role", "environment_id"):
        _require_grant(authority, role, environment_id, why=f"change who holds, through team {team.name},")


def _authorize_team(authority, team, m2m, before):
    """Joining or leaving a team takes its role bindings along: changing who is in it is granting
    or removing each of them."""
    if before is None or "members" not in m2m:
        return  # a new team has no bindings yet; no change of members
    proposed = {getattr(member, "pk", member) for member in m2m["members"]}
    if proposed != set(before.get("members", ())):
        _require_team_grants(authority, team)


def _authorize_team_delete(authority, team, m2m, before):
    _require_team_grants(authority, team)


def create_team(actor, *, members=(), **fields):
    return create_object(actor, Team, fields, m2m={"members": list(members)}, authorize=_authorize_team)


def update_team(actor, team, *, members=None, **fields):
    m2m = {"members": list(members)} if members is not None else None
    team = update_object(actor, team, fields, m2m=m2m, authorize=_authorize_team)
    for member in team.members.all():
        forget(member)
    return team


def delete_team(actor, team):
    delete_object(actor, team, authorize=_authorize_team_delete)


# Role bindings ------------------------------------------------------------------------------

def _authorize_binding(authority, binding, m2m, before):
    _require_grant(authority, binding.role, binding.environment_id)
    if before is not None:
        _require_grant(authority, before["role"], before["environment"])


def create_binding(actor, *, role, environment=None, user=None, team=None):
    return create_object(actor, RoleBinding, {"role": role, "environment": environment, "user": user, "team": team},
                         authorize=_authorize_binding)


def update_binding(actor, binding, *, role=None, environment=..., **unchanged):
    """Change a binding's role or environment; its subject (the user or team) stays: a binding for
    someone else is a new binding. The actor must be able to grant the role both as it was and as
    it becomes (`_authorize_binding`)."""
    subject_changed = [name for name in ("user", "team") if name in unchanged
                       and getattr(unchanged[name], "pk", unchanged[name]) != getattr(binding, f"{name}_id")]
    if subject_changed or set(unchanged) - {"user", "team"}:
        raise ValidationError({name: ["A binding's user or team does not change: add a binding for the other one "
                                      "and remove this one."] for name in subject_changed or sorted(unchanged)})
    fields = {} if role is None else {"role": role}
    if environment is not ...:
        fields["environment"] = environment
    return update_object(actor, binding, fields, authorize=_authorize_binding)


def delete_binding(actor, binding):
    delete_object(actor, binding, authorize=_authorize_binding)


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


def global_admins():
    """Active users who may manage every environment: superusers and admins of all environments,
    directly or through a team."""
    return User.objects.filter(is_active=True).filter(
        Q(is_superuser=True)
        | Q(role_bindings__role__in=MANAGING_ROLES, role_bindings__environment__isnull=True)
        | Q(ops_teams__role_bindings__role__in=MANAGING_ROLES, ops_teams__role_bindings__environment__isnull=True)
    ).distinct()


def _check_deactivation(actor, user):
    """Nobody locks themselves out, and the portal keeps an active administrator of everything."""
    if actor.user_id == user.pk:
        raise ValidationError({"is_active": ["You cannot deactivate yourself."]})
    admins = global_admins()
    if admins.filter(pk=user.pk).exists() and not admins.exclude(pk=user.pk).exists():
        raise ValidationError({"is_active": [f"{user.username} is the last active administrator of all "
                                             "environments: make someone else one first."]})


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
        if user.is_active and fields.get("is_active") is False:
            _check_deactivation(actor, user)
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
