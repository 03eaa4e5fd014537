from django.core.exceptions import ValidationError
from django.db import models

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.inventory.models import Host, name_validator

from . import validation


class ConfigTemplate(models.Model):
    """A file every matching host should hold: a Jinja2 template rendered per host, with its mode,
    owner and group, and a command to run on the host when the file changed."""

    name = models.CharField(max_length=128, validators=[name_validator])
    description = models.CharField(max_length=255, blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="config_templates")
    # Which hosts: the jobs selector format ({"groups": [...], "tags": [...], "pattern": ..., "all": true}).
    selector = models.JSONField(default=dict)
    path = models.CharField(max_length=validation.MAX_PATH, validators=[validation.path])
    content = models.TextField(blank=True, validators=[validation.content])
    mode = models.PositiveSmallIntegerField(null=True, blank=True, validators=[validation.mode],
                                            help_text="Permission bits; empty: keep the file's (0644 when new).")
    owner = models.CharField(max_length=32, blank=True, help_text="Empty: keep the file's owner.")
    group = models.CharField(max_length=32, blank=True, help_text="Empty: keep the file's group.")
    service_action = models.CharField(max_length=validation.MAX_SERVICE_ACTION, blank=True,
                                      validators=[validation.service_action],
                                      help_text="Run on the host (sh -c) only when the file changed.")
    sensitive = models.BooleanField(default=False, help_text="The file holds secrets: diffs are neither stored "
                                                             "nor shown, and only administrators may render it.")
    enabled = models.BooleanField(default=True)
    # Bumped on every change: an apply job names the versions it was planned (and approved) with.
    version = models.PositiveIntegerField(default=1, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_prefix = "configtemplate"
    audit_exclude = ("updated",)

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="configtemplate_unique_name")]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        for field in ("owner", "group"):
            try:
                validation.posix_name(getattr(self, field), what=field)
            except ValidationError as exc:
                errors[field] = exc.messages
        if errors:
            raise ValidationError(errors)

    @property
    def mode_text(self):
        return validation.format_mode(self.mode)


class DriftReport(models.Model):
    """The last check of one configuration on one host: in line, drifted (with the diff), or unknown."""

    config = models.ForeignKey(ConfigTemplate, on_delete=models.CASCADE, related_name="drift_reports")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="drift_reports")
    config_version = models.PositiveIntegerField()
    drifted = models.BooleanField(null=True, help_text="Empty: the check could not tell (see error).")
    changes = models.JSONField(default=list, blank=True)  # ["content", "mode 0644 -> 0600", ...]
    diff = models.TextField(blank=True)
    error = models.TextField(blank=True)
    checked = models.DateTimeField(db_index=True)
    drifted_since = models.DateTimeField(null=True, blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)
    # An external alert was raised for this drift and is not resolved yet.
    alerted = models.BooleanField(default=False)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "config__environment"

    class Meta:
        # Drifted first, then unknown, then in line.
        ordering = [models.Case(models.When(drifted=True, then=0), models.When(drifted__isnull=True, then=1),
                                default=2, output_field=models.IntegerField()), "config__name", "host__name"]
        constraints = [models.UniqueConstraint(fields=["config", "host"], name="driftreport_one_per_host")]
        indexes = [models.Index(fields=["drifted", "-checked"])]

    def __str__(self):
        return f"{self.config_id} on {self.host_id}: {self.state}"

    @property
    def state(self) -> str:
        return {True: "drifted", False: "in sync", None: "unknown"}[self.drifted]

    @property
    def alert_key(self):
        return alert_key(self.host_id, self.config_id)


ALERT_SOURCE = "config_drift"


def alert_key(host_id, config_id):
    return f"host:{host_id}:config:{config_id}"


# How jobs name the configurations they act on: "12@3,14@1" (id@version; the version pins what was
# planned and approved, and may be left out by drift checks, which use what is current).
PLAN_IDS_PATTERN = r"[0-9]{1,12}(@[0-9]{1,9})?(,[0-9]{1,12}(@[0-9]{1,9})?){0,499}"


def plan_ids(configs, *, pin=True):
    return ",".join(f"{c.pk}@{c.version}" if pin else str(c.pk) for c in configs)


def parse_plan_ids(text):
    """"12@3,14" -> [(12, 3), (14, None)]."""
    pairs = []
    for item in str(text).split(","):
        config_id, _, version = item.strip().partition("@")
        pairs.append((int(config_id), int(version) if version else None))
    return pairs
