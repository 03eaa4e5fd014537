"""Sign-in, sign-in failure and sign-out go to the audit log; failures feed the sign-in throttle."""
from django.contrib.auth import signals
from django.db import transaction
from django.dispatch import receiver

from ops_portal.audit.services import record
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import throttle


def _actor(request, user=None, username=""):
    if request is not None and user is not None:
        base = Actor.from_request(request, source=Source.WEB)
        return Actor(user.pk, user.get_username(), base.source, base.request_id, base.client_address)
    if request is not None:
        base = Actor.from_request(request, source=Source.WEB)
        return Actor(None, username[:150], base.source, base.request_id, base.client_address)
    return Actor(getattr(user, "pk", None), username[:150], Source.WEB)


@receiver(signals.user_logged_in)
def on_login(sender, request, user, **kwargs):
    throttle.clear_user(user.get_username())
    with transaction.atomic():
        record(_actor(request, user), "auth.login", user, object_repr=user.get_username())


@receiver(signals.user_logged_out)
def on_logout(sender, request, user, **kwargs):
    if user is not None:
        with transaction.atomic():
            record(_actor(request, user), "auth.logout", user, object_repr=user.get_username())


@receiver(signals.user_login_failed)
def on_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))
    actor = _actor(request, username=username)
    throttled = throttle.was_throttled(request)
    if not throttled:
        throttle.note_failure(username, actor.client_address)
    with transaction.atomic():
        record(actor, "auth.login_failed", object_type="auth.user", object_repr=username[:200],
               extra={"throttled": True} if throttled else None)
