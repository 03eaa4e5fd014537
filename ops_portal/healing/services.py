"""Changes people make to self-healing: policies (audited, decided before anything is written).
Administrators of an environment manage its policies: a policy makes the portal act on containers
by itself. Healing needs are recorded by receivers.py and decided by healer.py."""
from ops_portal.audit.crud import create_object, delete_object, update_object

from .models import HealingPolicy


def create_policy(actor, **fields):
    return create_object(actor, HealingPolicy, fields)


def update_policy(actor, policy, **fields):
    return update_object(actor, policy, fields)


def delete_policy(actor, policy):
    delete_object(actor, policy)
