"""Freezes (nothing new starts, unless an emergency) and maintenance windows (when held jobs may
run), per environment."""
from django.core.exceptions import ValidationError
from django.utils import timezone

from ops_portal.audit.crud import create_object, delete_object, update_object

from .models import FreezeWindow, MaintenanceWindow

# Freezes -----------------------------------------------------------------------------------


def create_freeze(actor, **fields):
    return create_object(actor, FreezeWindow, fields)


def delete_freeze(actor, freeze):
    delete_object(actor, freeze)


def active_freeze(environment, at=None):
    at = at or timezone.now()
    return FreezeWindow.objects.filter(environment=environment, starts__lte=at, ends__gt=at).order_by("ends").last()


# Maintenance windows -----------------------------------------------------------------------

def create_window(actor, **fields):
    return create_object(actor, MaintenanceWindow, fields)


def update_window(actor, window, **fields):
    return update_object(actor, window, fields)


def delete_window(actor, window):
    delete_object(actor, window)


def next_window_start(environment, after=None):
    """When the environment's next maintenance window opens (now, if one is open); None if none."""
    after = after or timezone.now()
    openings = [w.open_at(after) for w in MaintenanceWindow.objects.filter(environment=environment)]
    starts = [max(start, after) for start, _ in filter(None, openings)]
    return min(starts) if starts else None


def hold_for_window(environment):
    start = next_window_start(environment)
    if start is None:
        raise ValidationError({"in_window": [f"{environment} has no maintenance window."]})
    return start
