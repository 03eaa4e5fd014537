"""Self-healing policies (managed, audited) and the record of each healing need (observed, then
decided by the portal: launched, skipped, waiting for its backoff, or given up)."""
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.containers.models import Container, Engine
from ops_portal.inventory.models import name_validator
from ops_portal.jobs.models import Job

from .choices import EventState, HealAction, Trigger

MAX_LABELS = 20


def validate_selector(value):
    """{"label": "value"} ("" matches any value of the label); keys and values are short texts."""
    if not isinstance(value, dict) or len(value) > MAX_LABELS:
        raise ValidationError(f"Give at most {MAX_LABELS} labels as an object: {{\"app\": \"web\"}}.")
    for key, wanted in value.items():
        if not isinstance(key, str) or not key or len(key) > 255 or "\x00" in key:
            raise ValidationError("Label names are 1-255 characters.")
        if not isinstance(wanted, str) or len(wanted) > 255 or "\x00" in wanted:
            raise ValidationError(f"The value of label {key[:40]} must be a text of at most 255 characters "
                                  "(empty: any value).")


class HealingPolicy(models.Model):
    """Which containers the portal heals, how, and when it stops trying.

    Scope: the environment, narrowed by an engine, a label selector and/or one container name; when
    several policies match a container the most specific wins (container name, then the number of
    labels, then an engine; then the oldest)."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="healing_policies")
    name = models.CharField(max_length=128, validators=[name_validator])
    description = models.CharField(max_length=255, blank=True)
    engine = models.ForeignKey(Engine, null=True, blank=True, on_delete=models.CASCADE, related_name="healing_policies",
                               help_text="Only containers of this engine (empty: every engine of the environment).")
    label_selector = models.JSONField(default=dict, blank=True, validators=[validate_selector],
                                      help_text='Only containers with these labels: {"app": "web"} ("" matches any '
                                                "value).")
    container_name = models.CharField(max_length=255, blank=True,
                                      help_text="Only the container of this name (it keeps its history through "
                                                "recreates).")
    action = models.CharField(max_length=16, choices=HealAction.choices, default=HealAction.RESTART)
    on_exit = models.BooleanField(default=True, help_text="Heal containers that exit (not after a requested stop).")
    on_unhealthy = models.BooleanField(default=False, help_text="Heal running containers that turn unhealthy.")
    heal_clean_exit = models.BooleanField(default=False,
                                          help_text="Also heal containers that exit with code 0 (finished work).")
    backoff_seconds = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(0), MaxValueValidator(3600)],
        help_text="Delay before the second attempt; doubled for each attempt after it.")
    backoff_max_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(0), MaxValueValidator(86400)], help_text="The longest delay.")
    max_attempts = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Attempts within the window; one more crash is a crash loop: no more attempts, an alert.")
    window_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(10), MaxValueValidator(7 * 86400)],
        help_text="The window the attempts are counted in.")
    stable_seconds = models.PositiveIntegerField(
        default=120, validators=[MinValueValidator(5), MaxValueValidator(86400)],
        help_text="Up this long after a crash loop: the alert resolves.")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_exclude = ("updated",)

    class Meta:
        ordering = ["environment__name", "name"]
        verbose_name_plural = "healing policies"
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="healingpolicy_unique_name")]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.engine_id and self.environment_id and self.engine.environment_id != self.environment_id:
            errors["engine"] = "The engine belongs to another environment."
        if not (self.on_exit or self.on_unhealthy):
            errors["on_exit"] = "Heal on exit, on unhealthy, or both."
        if self.backoff_max_seconds < self.backoff_seconds:
            errors["backoff_max_seconds"] = "The longest delay cannot be shorter than the first."
        if self.container_name and ("\x00" in self.container_name or "/" in self.container_name):
            errors["container_name"] = "Give the container's name as docker ps shows it."
        if errors:
            raise ValidationError(errors)

    @property
    def specificity(self):
        return (bool(self.container_name), len(self.label_selector or {}), bool(self.engine_id), -(self.pk or 0))

    def triggers(self):
        return {t for t, on in ((Trigger.EXIT, self.on_exit), (Trigger.UNHEALTHY, self.on_unhealthy)) if on}


class HealingEvent(models.Model):
    """One healing need: a container exited or turned unhealthy under a policy. `key` names the
    engine's event (container, trigger, finish or start time), so one exit is decided once, however
    many times it is reported."""

    key = models.CharField(max_length=200, unique=True)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="healing_events")
    engine = models.ForeignKey(Engine, on_delete=models.CASCADE, related_name="healing_events")
    container = models.ForeignKey(Container, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="healing_events")
    docker_id = models.CharField(max_length=64)
    container_name = models.CharField(max_length=255)
    policy = models.ForeignKey(HealingPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    policy_name = models.CharField(max_length=128, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    exit_code = models.IntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=EventState.choices, default=EventState.PENDING)
    action = models.CharField(max_length=16, choices=HealAction.choices, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    attempt = models.PositiveIntegerField(null=True, blank=True)  # this attempt's number in the window
    delay_seconds = models.FloatField(null=True, blank=True)  # the backoff it waited
    not_before = models.DateTimeField(null=True, blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    decided = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["engine", "container_name", "state", "decided"]),
                   models.Index(fields=["state"])]

    def __str__(self):
        return f"{self.container_name} {self.get_trigger_display().lower()} ({self.get_state_display().lower()})"
