from django.db import models


class Source(models.TextChoices):
    """Where a change came from."""

    WEB = "web", "Web"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    WORKER = "worker", "Worker"
    SYSTEM = "system", "System"
