"""Choices of the container level: how engines are reached, what they say about themselves, and the
states of what runs on them (the engine's own words, kept as it gives them)."""
from django.db import models

from ops_portal.monitoring import choices as monitoring_choices


class Transport(models.TextChoices):
    UNIX = "unix", "Unix socket (the engine on the portal's machine)"
    SSH = "ssh", "SSH through the engine's inventory host"
    TCP = "tcp", "TCP with TLS"


class EngineState(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    OK = "ok", "Up"
    DEGRADED = "degraded", "Up, with problems"
    DOWN = "down", "Down"
    REFUSED = "refused", "Refused (TLS, host key or login)"
    UNSUPPORTED = "unsupported", "API too old"
    MISCONFIGURED = "misconfigured", "Misconfigured"


# The backend's EngineStatus.state (schedulers.container.engine) -> ours.
BACKEND_STATES = {"up": EngineState.OK, "degraded": EngineState.DEGRADED, "down": EngineState.DOWN,
                  "refused": EngineState.REFUSED, "unsupported": EngineState.UNSUPPORTED,
                  "misconfigured": EngineState.MISCONFIGURED, "error": EngineState.DOWN}


class SwarmRole(models.TextChoices):
    NONE = "none", "Not in a swarm"
    MANAGER = "manager", "Manager"
    WORKER = "worker", "Worker"


class ContainerState(models.TextChoices):
    CREATED = "created", "Created"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    RESTARTING = "restarting", "Restarting"
    REMOVING = "removing", "Removing"
    EXITED = "exited", "Exited"
    DEAD = "dead", "Dead"


class Health(models.TextChoices):
    NONE = "", "No health check"
    STARTING = "starting", "Starting"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


class ServiceMode(models.TextChoices):
    REPLICATED = "replicated", "Replicated"
    GLOBAL = "global", "Global"
    REPLICATED_JOB = "replicated-job", "Replicated job"
    GLOBAL_JOB = "global-job", "Global job"


class PublishMode(models.TextChoices):
    """How a service's ports are published (schedulers.container.publish_mode)."""

    NONE = "none", "Not published"
    INGRESS = "ingress", "Routing mesh (ingress, needs IPVS)"
    HOST = "host", "Host mode (each task's node)"
    MIXED = "mixed", "Both"


class EndpointMode(models.TextChoices):
    VIP = "vip", "Virtual IP (needs IPVS)"
    DNSRR = "dnsrr", "DNS round robin"


# Container metrics stored in monitoring's series: defined there (its rules watch them).
ContainerMetric = monitoring_choices.ContainerMetric


# Job actions (job_actions.py), named here so services and pages need not import them.
CONTAINER_ACTIONS = ("container.start", "container.stop", "container.restart", "container.recreate",
                     "container.pause", "container.unpause", "container.kill", "container.remove", "container.logs",
                     "container.stats", "container.exec")
CONTAINER_OPERATIONS = [name.split(".")[1] for name in CONTAINER_ACTIONS]  # the API's bulk "operation" values
SERVICE_ACTIONS = ("service.create", "service.scale", "service.update", "service.rollback", "service.remove",
                   "service.check_balance")
STACK_ACTIONS = ("stack.deploy", "stack.remove")
