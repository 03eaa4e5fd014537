"""Changes to the inventory: hosts, groups and credentials. Each is audited."""
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import require_on
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, snapshot
from schedulers import sshkeys

from .models import Credential, Host, HostGroup


def _key_fields(private_key, passphrase):
    try:
        public, fingerprint = sshkeys.describe(private_key, passphrase or None)
    except sshkeys.BadKeyError as exc:
        raise ValidationError({"private_key": [str(exc)]}) from None
    return {"private_key": private_key, "passphrase": passphrase or "", "public_key": public,
            "fingerprint": fingerprint}


def create_credential(actor, *, private_key, passphrase="", **fields):
    return create_object(actor, Credential, {**fields, **_key_fields(private_key, passphrase)})


def update_credential(actor, credential, **fields):
    fields.pop("private_key", None)
    fields.pop("passphrase", None)
    return update_object(actor, credential, fields)


def rotate_credential(actor, credential, *, private_key, passphrase=""):
    """Replace the key of a credential; hosts using it switch at their next connection."""
    fields = {**_key_fields(private_key, passphrase), "rotated": timezone.now()}
    return update_object(actor, credential, fields, audit_action="credential.rotate")


def delete_credential(actor, credential):
    delete_object(actor, credential)


def create_group(actor, **fields):
    return create_object(actor, HostGroup, fields)


def update_group(actor, group, **fields):
    return update_object(actor, group, fields)


def delete_group(actor, group):
    delete_object(actor, group)


def _check_groups(environment, groups):
    for group in groups or ():
        if group.environment_id != environment.pk:
            raise ValidationError({"groups": [f"Group {group.name} belongs to another environment."]})


def create_host(actor, *, groups=(), **fields):
    _check_groups(fields.get("environment"), groups)
    return create_object(actor, Host, fields, m2m={"groups": list(groups)})


def update_host(actor, host, *, groups=None, **fields):
    if groups is not None:
        _check_groups(fields.get("environment", host.environment), groups)
    m2m = {"groups": list(groups)} if groups is not None else None
    return update_object(actor, host, fields, m2m=m2m)


def delete_host(actor, host):
    delete_object(actor, host)


def accept_host_key(actor, host):
    """Pin the host key the host last offered (after a legitimate re-install, say)."""
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        if actor.user is not None:
            require_on(actor.user, Action.MANAGE, host)
        if not host.offered_host_key:
            raise ValidationError({"host_key": ["The host has not offered a new key."]})
        before = snapshot(host)
        host.host_key, host.offered_host_key = host.offered_host_key, ""
        host.reachability = "unknown"
        host.last_error = ""
        host.save()
        record(actor, "host.accept_host_key", host, before=before, after=snapshot(host))
    return host
