"""Tell open websockets that a user's authority changed.

A websocket is authorised once per subscription, but stays open for hours: a role binding, a team
membership, the user row (deactivated, superuser, password), an API token or a sign-out can take
away what it was allowed. Each such change sends `auth.changed` to the group of every user it
touches, after the transaction commits; the consumer (core.consumers) then checks its credential
again and re-authorises each subscription. Receivers hang on the models rather than on service
functions so that no path (admin, shell, cascade) is missed. A lost message is covered by the
consumer's own periodic re-check.
"""
import hashlib

from django.contrib.auth import get_user_model, user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from ops_portal.core import streams

from .models import APIToken, RoleBinding, Team

User = get_user_model()


def group(user_id):
    return f"auth.user.{user_id}"


def session_digest(session_key):
    """What a sign-out names in its message instead of the session key itself."""
    return hashlib.sha256(f"ws-session:{session_key}".encode()).hexdigest()[:32]


def changed(user_ids, reason, **extra):
    """After commit, tell every open socket of these users to re-check (reason is for the client)."""
    ids = sorted({int(pk) for pk in user_ids if pk})
    if not ids:
        return
    message = {"type": "auth.changed", "reason": reason, **extra}

    def send():
        for pk in ids:
            streams.send_control(group(pk), message)

    transaction.on_commit(send)


def _binding_subjects(user_id, team_id):
    if user_id:
        return [user_id]
    if team_id:
        return list(Team.members.through.objects.filter(team_id=team_id).values_list("user_id", flat=True))
    return []


@receiver(pre_save, sender=RoleBinding)
def _binding_before_change(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    old = RoleBinding.objects.filter(pk=instance.pk).values_list("user_id", "team_id").first()
    if old:
        changed(_binding_subjects(*old), "role bindings changed")


@receiver(post_save, sender=RoleBinding)
@receiver(post_delete, sender=RoleBinding)
def _binding_changed(sender, instance, raw=False, **kwargs):
    if not raw:
        changed(_binding_subjects(instance.user_id, instance.team_id), "role bindings changed")


@receiver(pre_delete, sender=Team)
def _team_deleted(sender, instance, **kwargs):
    changed(instance.members.values_list("pk", flat=True), "team removed")


@receiver(m2m_changed, sender=Team.members.through)
def _membership_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if reverse:  # user.ops_teams.add/remove/clear: the user is the instance
        if action in ("post_add", "post_remove", "post_clear"):
            changed([instance.pk], "team membership changed")
    elif action in ("post_add", "post_remove"):
        changed(pk_set or (), "team membership changed")
    elif action == "pre_clear":
        changed(instance.members.values_list("pk", flat=True), "team membership changed")


@receiver(post_save, sender=User)
def _user_saved(sender, instance, created=False, update_fields=None, raw=False, **kwargs):
    if raw or created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return
    changed([instance.pk], "account changed")


@receiver(post_delete, sender=User)
def _user_deleted(sender, instance, **kwargs):
    changed([instance.pk], "account removed")


@receiver(post_save, sender=APIToken)
@receiver(post_delete, sender=APIToken)
def _token_changed(sender, instance, signal, created=False, raw=False, **kwargs):
    if raw or created:
        return
    if signal is post_delete or instance.revoked is not None:
        changed([instance.user_id], "API token revoked", token=instance.pk)  # its sockets close at once
    else:
        changed([instance.user_id], "API token changed")


@receiver(user_logged_out)
def _signed_out(sender, request, user, **kwargs):
    # Django flushes the session right after this signal: name it so its sockets close at once
    # instead of racing the flush.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None:
        changed([user.pk], "signed out", session=session_digest(session_key) if session_key else None)
