"""The container level: engines (managed), what runs on them (observed), stacks and allowed host
paths (managed).

Engines, stacks and allowed host paths are changed by people through services (audited). The
observed rows (containers, images, networks, volumes, nodes, services, tasks) are written only by
sync.py from what the engines report, in bulk, and are not audited row by row (like host facts);
every change a person makes to them goes through a job.
"""
import posixpath
import re
import urllib.parse

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Coalesce
from django.utils import timezone

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.core.crypto import EncryptedTextField
from ops_portal.inventory.models import Host, Site, name_validator

from .choices import EndpointMode, EngineState, PublishMode, SwarmRole, Transport

MAX_COMPOSE = 256 * 1024
MAX_PEM = 64 * 1024
stack_name_validator = RegexValidator(r"^[a-z0-9][a-z0-9_-]{0,39}\Z",
                                      "Use lower-case letters, digits, - and _ (1-40 characters).")


def validate_pem(value):
    if value and ("-----BEGIN " not in value or "\x00" in value or len(value) > MAX_PEM):
        raise ValidationError("Paste PEM text (-----BEGIN …-----).")


class Engine(models.Model):
    """A Docker engine the portal reaches: by unix socket (this machine), SSH through its inventory
    host (that host's credential and pinned host key), or TCP with TLS (client key encrypted)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="engines")
    name = models.CharField(max_length=128, validators=[name_validator])
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.PROTECT, related_name="engines",
                             help_text="The inventory host the engine runs on (same environment); SSH engines "
                                       "are reached through it.")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="engines",
                             help_text="Where an engine with no inventory host is: its jobs run on the workers of "
                                       "this site's queue. An engine on a host is on its host's site.")
    transport = models.CharField(max_length=8, choices=Transport.choices, default=Transport.UNIX)
    url = models.CharField(max_length=300, unique=True,
                           help_text="unix:///var/run/docker.sock or tcp://host:2376; SSH engines: set from "
                                     "their host.")
    tls_ca = models.TextField(blank=True, validators=[validate_pem], help_text="PEM; empty: the system's CAs.")
    tls_cert = models.TextField(blank=True, validators=[validate_pem], help_text="Client certificate (PEM).")
    tls_key = EncryptedTextField(blank=True, help_text="Client key (PEM). Stored encrypted, never shown.")
    tls_verify = models.BooleanField(default=True, help_text="Check the engine's certificate and name.")
    enabled = models.BooleanField(default=True)
    # Observed (written by checks and the watcher; not audited).
    state = models.CharField(max_length=16, choices=EngineState.choices, default=EngineState.UNKNOWN)
    error = models.CharField(max_length=1000, blank=True)
    version = models.CharField(max_length=64, blank=True)
    api_version = models.CharField(max_length=16, blank=True)
    os = models.CharField(max_length=200, blank=True)
    swarm_role = models.CharField(max_length=8, choices=SwarmRole.choices, default=SwarmRole.NONE)
    swarm_node_id = models.CharField(max_length=64, blank=True)
    info = models.JSONField(default=dict, blank=True)  # cpus, memory, kernel, counts, problems
    last_seen = models.DateTimeField(null=True, blank=True)
    last_sync = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_secret_fields = ("tls_key",)
    audit_exclude = ("updated", "state", "error", "version", "api_version", "os", "swarm_role", "swarm_node_id",
                     "info", "last_seen", "last_sync")
    OBSERVED = audit_exclude[1:]

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="engine_unique_name")]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.host_id and self.environment_id and self.host.environment_id != self.environment_id:
            errors["host"] = "The host belongs to another environment."
        if self.host_id and self.site_id:
            where = f"site {self.host.site}" if self.host.site_id else "no site"
            errors["site"] = (f"An engine on an inventory host is on its host's site ({self.host.name} is on "
                              f"{where}): leave the site empty, or move the host on the host's page.")
        if self.transport == Transport.SSH:
            host = self.host if self.host_id else None
            if host is None:
                errors["host"] = "An SSH engine is reached through its inventory host: choose it."
            elif not host.credential_id:
                errors["host"] = f"Host {host.name} has no SSH credential."
            elif not host.host_key:
                errors["host"] = f"Host {host.name} has no pinned host key yet (gather its facts once)."
            else:
                self.url = f"ssh://{host.login_user}@{host.address}:{host.port}"
        scheme = urllib.parse.urlsplit(self.url or "").scheme
        if self.transport != Transport.SSH and scheme != self.transport:
            errors["url"] = f"A {self.transport} engine's URL starts with {self.transport}://."
        if self.transport == Transport.TCP and not (self.tls_cert and self.tls_key):
            # Plain TCP gives root on the engine's host to anyone on the network.
            errors["tls_cert"] = "A TCP engine needs a client certificate and key (TLS)."
        if self.transport != Transport.TCP and (self.tls_ca or self.tls_cert or self.tls_key):
            errors["tls_ca"] = "TLS certificates apply to TCP engines only."
        if self.tls_key and ("-----BEGIN " not in self.tls_key or "\x00" in self.tls_key
                             or len(self.tls_key) > MAX_PEM):
            errors["tls_key"] = "Paste the client key as PEM text."
        if errors:
            raise ValidationError(errors)

    @property
    def placed_on(self):
        """The site whose workers run this engine's jobs: its host's, or its own without a host."""
        return self.host.site if self.host_id else self.site

    @property
    def is_up(self):
        return self.state in (EngineState.OK, EngineState.DEGRADED)

    @property
    def is_manager(self):
        return self.swarm_role == SwarmRole.MANAGER


class Observed(models.Model):
    """What an engine reported, written by sync.py only."""

    seen = models.DateTimeField(default=timezone.now)  # the last sync or event that saw it

    objects = RestrictedQuerySet.as_manager()
    environment_path = "engine__environment"

    class Meta:
        abstract = True


class Container(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="containers")
    docker_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    image = models.CharField(max_length=500, blank=True)  # the reference it was created from
    image_id = models.CharField(max_length=100, blank=True)
    digest = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, blank=True)  # ContainerState: the engine's word
    health = models.CharField(max_length=16, blank=True)  # Health
    status = models.CharField(max_length=200, blank=True)  # "Up 3 minutes (healthy)"
    ports = models.JSONField(default=list, blank=True)  # [{"ip", "private", "public", "protocol"}]
    labels = models.JSONField(default=dict, blank=True)
    networks = models.JSONField(default=list, blank=True)
    mounts = models.JSONField(default=list, blank=True)  # [{"type", "source", "destination", "rw"}]
    restart_count = models.IntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the engine last reported a "stop" event for it (docker stop, or the portal's stop job):
    # an exit after a requested stop is not a crash (self-healing leaves it alone).
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    service_id = models.CharField(max_length=64, blank=True)
    service_name = models.CharField(max_length=255, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    stack = models.CharField(max_length=64, blank=True)
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers")
    # Whether the image's tag now points to another image (checks.container_image_update).
    image_update = models.JSONField(default=dict, blank=True)

    class Meta:
        # By name, then engine (compose names repeat across engines): read in index order, so a page
        # of 50,000 containers costs its 100 rows, not a sort of them all joined to their engines.
        ordering = ["name", "engine_id"]
        constraints = [models.UniqueConstraint(fields=["engine", "docker_id"], name="container_unique_id")]
        indexes = [models.Index(fields=["engine", "name"]), models.Index(fields=["engine", "state"]),
                   models.Index(fields=["name", "engine"], name="container_name_engine")]

    def __str__(self):
        return self.name

    @property
    def short_id(self):
        return self.docker_id[:12]

    @property
    def metric_key(self):
        """The key of the container's metric series (monitoring Series.mount)."""
        return metric_key(self.engine_id, self.docker_id)


def series_host():
    """Whose series hold a container's samples, as a query expression: the container's inventory
    host, else its engine's (None: no host to hold them)."""
    return Coalesce("host_id", "engine__host_id")


def metric_key(engine_id, docker_id):
    """The key of a container's metric series: "ctr:<engine id>:<short docker id>"."""
    return f"ctr:{engine_id}:{docker_id[:12]}"


def service_metric_key(service_pk):
    """The key of a Swarm service's metric series (its tasks' averages): "svc:<service row id>"."""
    return f"svc:{service_pk}"


def service_series(services):
    """{Swarm service id: (service row id, id of the host whose series hold its samples)} of these
    Service rows on enabled engines tied to an inventory host: one row per service id (the oldest,
    when several manager engines of one swarm list it)."""
    found = {}
    rows = (services.filter(engine__enabled=True, engine__host_id__isnull=False).order_by("pk")
            .values_list("service_id", "pk", "engine__host_id"))
    for service_id, pk, host_id in rows:
        found.setdefault(service_id, (pk, host_id))
    return found


class Image(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="images")
    docker_id = models.CharField(max_length=100)
    tags = models.JSONField(default=list, blank=True)
    digests = models.JSONField(default=list, blank=True)
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(null=True, blank=True)
    labels = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["engine", "docker_id"]
        constraints = [models.UniqueConstraint(fields=["engine", "docker_id"], name="image_unique_id")]

    def __str__(self):
        return (self.tags or [self.docker_id[:19]])[0]


class Network(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="networks")
    docker_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    driver = models.CharField(max_length=64, blank=True)
    scope = models.CharField(max_length=16, blank=True)
    attachable = models.BooleanField(default=False)
    ingress = models.BooleanField(default=False)
    internal = models.BooleanField(default=False)
    labels = models.JSONField(default=dict, blank=True)
    subnets = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["engine", "name"]
        constraints = [models.UniqueConstraint(fields=["engine", "docker_id"], name="network_unique_id")]

    def __str__(self):
        return self.name


class Volume(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=255)
    driver = models.CharField(max_length=64, blank=True)
    mountpoint = models.CharField(max_length=1000, blank=True)
    scope = models.CharField(max_length=16, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["engine", "name"]
        constraints = [models.UniqueConstraint(fields=["engine", "name"], name="volume_unique_name")]

    def __str__(self):
        return self.name


class Node(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=64)
    hostname = models.CharField(max_length=255, blank=True)
    role = models.CharField(max_length=16, blank=True)
    availability = models.CharField(max_length=16, blank=True)
    state = models.CharField(max_length=16, blank=True)
    address = models.CharField(max_length=100, blank=True)
    engine_version = models.CharField(max_length=64, blank=True)
    leader = models.BooleanField(default=False)
    labels = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["engine", "hostname"]
        constraints = [models.UniqueConstraint(fields=["engine", "node_id"], name="node_unique_id")]

    def __str__(self):
        return self.hostname or self.node_id[:12]


class Service(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="services")
    service_id = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    image = models.CharField(max_length=500, blank=True)
    mode = models.CharField(max_length=16, blank=True)  # ServiceMode
    replicas_desired = models.IntegerField(null=True, blank=True)
    replicas_running = models.IntegerField(null=True, blank=True)
    spec = models.JSONField(default=dict, blank=True)  # the ServiceSpec as the portal reads it back
    version = models.BigIntegerField(default=0)  # the engine's spec version
    update_state = models.CharField(max_length=32, blank=True)
    update_message = models.CharField(max_length=1000, blank=True)
    endpoint_mode = models.CharField(max_length=8, choices=EndpointMode.choices, default=EndpointMode.VIP)
    publish_mode = models.CharField(max_length=8, choices=PublishMode.choices, default=PublishMode.NONE)
    ports = models.JSONField(default=list, blank=True)  # [{"target", "published", "protocol", "mode"}]
    endpoints = models.JSONField(default=list, blank=True)  # [{"address", "port", "protocol", "target", "slot"}]
    stack = models.CharField(max_length=64, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)
    image_update = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name", "engine_id"]  # index-served, as containers
        constraints = [models.UniqueConstraint(fields=["engine", "service_id"], name="service_unique_id")]
        indexes = [models.Index(fields=["engine", "name"]),
                   models.Index(fields=["name", "engine"], name="service_name_engine")]

    def __str__(self):
        return self.name

    @property
    def metric_key(self):
        """The key of the service's metric series (its tasks' averages, monitoring Series.mount)."""
        return service_metric_key(self.pk)


class Task(Observed):
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="tasks")
    task_id = models.CharField(max_length=64)
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    service_docker_id = models.CharField(max_length=64, blank=True)
    slot = models.IntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    container_id = models.CharField(max_length=64, blank=True)
    image = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, blank=True)
    desired_state = models.CharField(max_length=16, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    timestamp = models.DateTimeField(null=True, blank=True)
    ports = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["engine", "service_docker_id", "slot", "-timestamp"]
        constraints = [models.UniqueConstraint(fields=["engine", "task_id"], name="task_unique_id")]

    def __str__(self):
        return self.task_id[:12]


class Stack(models.Model):
    """A Compose file deployed (or to deploy) as one stack of services on a Swarm manager."""

    engine = models.ForeignKey(Engine, on_delete=models.PROTECT, related_name="stacks")
    name = models.CharField(max_length=40, validators=[stack_name_validator])
    description = models.CharField(max_length=255, blank=True)
    compose = models.TextField(help_text="A Compose file: services, networks, volumes (what Swarm uses).")
    deployed_hash = models.CharField(max_length=64, blank=True, editable=False)
    deployed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "engine__environment"
    audit_exclude = ("updated",)

    class Meta:
        ordering = ["engine", "name"]
        constraints = [models.UniqueConstraint(fields=["engine", "name"], name="stack_unique_name")]

    def __str__(self):
        return self.name

    def clean(self):
        if self.compose and (len(self.compose) > MAX_COMPOSE or "\x00" in self.compose):
            raise ValidationError({"compose": f"At most {MAX_COMPOSE // 1024} KiB of text."})


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_host_path(value):
    if not isinstance(value, str) or not value.startswith("/") or _CONTROL.search(value) or len(value) > 1000:
        raise ValidationError("Enter an absolute path such as /srv/data.")
    if posixpath.normpath(value) != value.rstrip("/") and value != "/":
        raise ValidationError("Write the path without .., . or doubled slashes.")


class AllowedHostPath(models.Model):
    """A host directory operators of the environment may bind-mount into containers and services
    (and everything below it). Only administrators set these: a bind mount of / or /etc is root on
    the host. Symbolic links on the host are not resolved: name directories only administrators
    can write to."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="allowed_host_paths")
    path = models.CharField(max_length=1000, validators=[validate_host_path])
    description = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_prefix = "allowedhostpath"

    class Meta:
        ordering = ["environment__name", "path"]
        constraints = [models.UniqueConstraint(fields=["environment", "path"], name="allowedhostpath_unique")]

    def __str__(self):
        return self.path
