"""Factories that each create exactly one object; related objects are passed in explicitly."""
import itertools

from django.contrib.auth import get_user_model
from django.db import transaction

from ops_portal.accounts.models import Environment, RoleBinding, Team
from ops_portal.inventory.models import Credential, Host, HostGroup

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-9"


def environment(name=None, *, is_production=False):
    return Environment.objects.create(name=name or f"env-{next(_seq)}", is_production=is_production)


def user(username=None, *, password=PASSWORD, **fields):
    user = get_user_model()(username=username or f"user{next(_seq)}", **fields)
    user.set_password(password)
    user.save()
    return user


def superuser(username=None):
    return user(username, is_superuser=True, is_staff=True)


def binding(*, role, user=None, team=None, environment=None):
    return RoleBinding.objects.create(role=role, user=user, team=team, environment=environment)


def team(name=None, *, members=()):
    t = Team.objects.create(name=name or f"team-{next(_seq)}")
    t.members.set(members)
    return t


def credential(environment, name=None, *, private_key=None):
    from tests.keys import ED25519_PRIVATE

    with transaction.atomic():
        from schedulers import sshkeys

        key = private_key or ED25519_PRIVATE
        public, fingerprint = sshkeys.describe(key)
        return Credential.objects.create(name=name or f"cred-{next(_seq)}", environment=environment,
                                         private_key=key, public_key=public, fingerprint=fingerprint)


def host_group(environment, name=None, **fields):
    return HostGroup.objects.create(name=name or f"group-{next(_seq)}", environment=environment, **fields)


def site(name=None, **fields):
    from ops_portal.inventory.models import Site

    return Site.objects.create(name=name or f"site-{next(_seq)}", **fields)


def host(environment, name=None, **fields):
    fields.setdefault("address", "127.0.0.1")
    return Host.objects.create(name=name or f"host-{next(_seq)}", environment=environment, **fields)
