"""Choices of the autoscaling app."""
from django.db import models


class Metric(models.TextChoices):
    CPU = "cpu", "CPU % of the service's tasks (container stats)"
    HTTP = "http", "A number read from an HTTP endpoint"


class Mode(models.TextChoices):
    TARGET = "target", "Target tracking"
    THRESHOLDS = "thresholds", "Up/down thresholds"


class Outcome(models.TextChoices):
    """What an evaluation came to."""

    PENDING = "pending", "Measuring"
    HOLD = "hold", "Held"
    SCALE_UP = "scale_up", "Scaled up"
    SCALE_DOWN = "scale_down", "Scaled down"
    NO_METRIC = "no_metric", "No metric reading"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


SCALED = (Outcome.SCALE_UP, Outcome.SCALE_DOWN)
