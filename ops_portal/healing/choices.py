"""Choices of self-healing: what a policy does, what sets it off, and what became of each need."""
from django.db import models


class HealAction(models.TextChoices):
    RESTART = "restart", "Restart the container"
    RECREATE = "recreate", "Recreate the container (fresh filesystem, same configuration)"


class Trigger(models.TextChoices):
    EXIT = "exit", "Exited"
    UNHEALTHY = "unhealthy", "Turned unhealthy"


class EventState(models.TextChoices):
    PENDING = "pending", "Pending (settling)"
    WAITING = "waiting", "Waiting (crash-loop backoff)"
    LAUNCHED = "launched", "Healing job launched"
    SKIPPED = "skipped", "Skipped"
    GAVE_UP = "gave_up", "Gave up (crash loop)"


OPEN_STATES = (EventState.PENDING, EventState.WAITING)

# Alerts of containers whose crash loop outlasts their policy (monitoring.services.raise_external).
ALERT_SOURCE = "container_crash_loop"
ALERT_SEVERITY = "critical"
