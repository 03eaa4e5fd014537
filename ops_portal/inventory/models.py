import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.core.crypto import EncryptedTextField

from .choices import Reachability, Transport

name_validator = RegexValidator(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?\Z",
    "Use letters, digits, dots, hyphens and underscores (1-128 characters).",
)
# A host name or an IP address: no spaces, quotes or shell metacharacters.
address_validator = RegexValidator(r"^[A-Za-z0-9:.\-\[\]%]{1,253}\Z", "Enter a host name or an IP address.")
username_validator = RegexValidator(r"^[a-z_][a-z0-9_.-]{0,31}\Z", "Enter a valid POSIX user name.")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}\Z")


def validate_tags(value):
    if not isinstance(value, list) or not all(isinstance(t, str) and TAG.match(t) for t in value):
        raise ValidationError("Tags must be a list of short words (letters, digits, . _ : -).")


def validate_variables(value):
    if not isinstance(value, dict) or not all(isinstance(k, str) and re.match(r"^[A-Za-z_]\w*\Z", k) for k in value):
        raise ValidationError("Variables must be an object whose keys are identifiers.")


site_name_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?\Z",
    "Use lower-case letters, digits, hyphens and underscores (1-40 characters): it names a Celery queue.",
)


class Site(models.Model):
    """A location or network zone. Work on a site's hosts runs on the workers consuming its queue
    (`site.<name>`), so a worker runs near the hosts it reaches. Global: one site holds hosts of
    every environment, so administrators of all environments manage sites."""

    name = models.CharField(max_length=40, unique=True, validators=[site_name_validator])
    description = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = None  # global: managed by administrators of all environments

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def queue(self):
        return site_queue(self.name)


SITE_QUEUE_PREFIX = "site."


def site_queue(name):
    """The Celery queue of the site called `name`."""
    return f"{SITE_QUEUE_PREFIX}{name}"


def site_of_queue(queue):
    """The site name a queue belongs to, or None for a queue that is not a site's."""
    return queue[len(SITE_QUEUE_PREFIX):] if queue.startswith(SITE_QUEUE_PREFIX) else None


class Credential(models.Model):
    """An SSH private key (and passphrase), encrypted at rest and never returned by the API."""

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="credentials")
    username = models.CharField(max_length=32, validators=[username_validator], default="root")
    private_key = EncryptedTextField()
    passphrase = EncryptedTextField(blank=True, default="")
    # Public half and fingerprint, derived at save time, safe to show.
    public_key = models.TextField(blank=True, editable=False)
    fingerprint = models.CharField(max_length=128, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    rotated = models.DateTimeField(null=True, blank=True, editable=False)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_secret_fields = ("private_key", "passphrase")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class HostGroup(models.Model):
    name = models.CharField(max_length=128, validators=[name_validator])
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="host_groups")
    description = models.CharField(max_length=255, blank=True)
    variables = models.JSONField(default=dict, blank=True, validators=[validate_variables])
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="hostgroup_unique_name")]

    def __str__(self):
        return f"{self.environment.name}/{self.name}" if self.environment_id else self.name


class Host(models.Model):
    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    address = models.CharField(max_length=253, validators=[address_validator])
    port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(max_length=32, blank=True, validators=[username_validator],
                                help_text="Empty: the credential's user name.")
    transport = models.CharField(max_length=8, choices=Transport.choices, default=Transport.SSH)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="hosts")
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="hosts")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="hosts",
                             help_text="Where the host is: its jobs run on the workers of this site's queue.")
    groups = models.ManyToManyField(HostGroup, blank=True, related_name="hosts")
    tags = models.JSONField(default=list, blank=True, validators=[validate_tags])
    variables = models.JSONField(default=dict, blank=True, validators=[validate_variables])
    enabled = models.BooleanField(default=True)
    # The pinned SSH host key ("ssh-ed25519 AAAA..."), trusted on first use.
    host_key = models.TextField(blank=True)
    # A different key the host presented; connections fail until an admin accepts it.
    offered_host_key = models.TextField(blank=True, editable=False)
    reachability = models.CharField(max_length=20, choices=Reachability.choices, default=Reachability.UNKNOWN)
    facts = models.JSONField(default=dict, blank=True, editable=False)
    facts_updated = models.DateTimeField(null=True, blank=True, editable=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_exclude = ("updated", "facts", "facts_updated", "reachability", "last_seen", "last_error")

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["environment", "name"])]

    def __str__(self):
        return self.name

    def clean(self):
        if self.credential_id and self.environment_id and self.credential.environment_id != self.environment_id:
            raise ValidationError({"credential": "The credential belongs to another environment."})
        for group in (self.groups.all() if self.pk else []):
            if group.environment_id != self.environment_id:
                raise ValidationError({"groups": f"Group {group.name} belongs to another environment."})

    @property
    def login_user(self):
        return self.username or (self.credential.username if self.credential_id else "root")



def hosts_for_lists():
    """Hosts as the lists show them, in a fixed number of queries: the environment joined, the
    groups prefetched with their environment (their names say it) into `group_list` (a plain
    list: prefetching into the manager clones the whole prefetch query once per host, quadratic
    in the page size), and the credential's name and user only (a joined credential would decrypt
    its key on every row). Facts, often tens of kilobytes a host, stay in the database."""
    return (Host.objects.select_related("environment", "site").defer("facts").prefetch_related(
        models.Prefetch("groups", queryset=HostGroup.objects.select_related("environment"), to_attr="group_list"),
        models.Prefetch("credential", queryset=Credential.objects.only("id", "name", "username", "environment_id"))))


def group_names(host_ids):
    """{host id: [its groups' names]} in the groups' own order (as hosts_for_lists gives them)."""
    found = {}
    order = [f"hostgroup__{term}" for term in HostGroup._meta.ordering]
    rows = Host.groups.through.objects.filter(host_id__in=host_ids).order_by(*order).values_list(
        "host_id", "hostgroup__name")
    for host_id, name in rows:
        found.setdefault(host_id, []).append(name)
    return found


class FactsChange(models.Model):
    """One change of a host's facts: which keys changed, from what, to what."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="facts_changes")
    time = models.DateTimeField(auto_now_add=True, db_index=True)
    changes = models.JSONField()  # {key: {"before": ..., "after": ...}}
    job_id = models.BigIntegerField(null=True, blank=True)

    environment_path = "host__environment"

    class Meta:
        ordering = ["-time", "-pk"]

    def __str__(self):
        return f"{self.host_id} facts changed at {self.time:%Y-%m-%d %H:%M}"


class Artifact(models.Model):
    """A release to deploy: a tar.gz archive, checked for unsafe paths when uploaded."""

    MAX_SIZE = 64 * 1024 * 1024

    name = models.CharField(max_length=128, validators=[name_validator])
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="artifacts")
    sha256 = models.CharField(max_length=64, editable=False)
    size = models.PositiveBigIntegerField(editable=False)
    data = models.BinaryField(editable=False)
    files = models.PositiveIntegerField(default=0, editable=False)
    uploaded_by = models.CharField(max_length=150, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_exclude = ("data",)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="artifact_unique_name")]

    def __str__(self):
        return self.name


class ComplianceResult(models.Model):
    """One check on one host at one time, with its evidence."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="compliance_results")
    name = models.CharField(max_length=64)
    passed = models.BooleanField(null=True)  # None: the host could not tell
    evidence = models.TextField(blank=True)
    time = models.DateTimeField(auto_now_add=True, db_index=True)
    job_id = models.BigIntegerField(null=True, blank=True)

    environment_path = "host__environment"

    class Meta:
        ordering = ["-time", "name"]
        indexes = [models.Index(fields=["host", "name", "-time"])]

    def __str__(self):
        return f"{self.host_id} {self.name}: {self.passed}"
