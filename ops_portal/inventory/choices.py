from django.db import models


class Transport(models.TextChoices):
    SSH = "ssh", "SSH"
    LOCAL = "local", "Local (the portal's own machine)"


class Reachability(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    REACHABLE = "reachable", "Reachable"
    UNREACHABLE = "unreachable", "Unreachable"
    HOST_KEY_CHANGED = "host_key_changed", "Host key changed"
