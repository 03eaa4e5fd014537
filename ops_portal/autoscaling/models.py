"""Autoscaling policies of Swarm services and the history of their evaluations.

A policy names its service by engine and name (a service removed and created again keeps its
policy). Policies are managed objects (audited through audit.crud); evaluations are written by the
evaluator only: one row per (policy, key), so a beat slot, a retried task or a second worker never
decides twice.
"""
import ipaddress
import urllib.parse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.containers.models import Engine
from ops_portal.jobs.models import Job

from .choices import Metric, Mode, Outcome
from .decide import Rules

MAX_REPLICAS = 1000  # service.scale's own bound
LOOPBACK_NAMES = ("localhost",)


def metric_url_allowed(url):
    """None when the portal may read a metric from `url`, else why not: http(s) only, no user
    information, to 127.0.0.1/::1/localhost or a host an administrator listed in
    AUTOSCALING_METRIC_HOSTS (an open URL would let anyone probe the portal's network)."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError on a port out of range
    except ValueError:
        return "Enter a valid http:// or https:// URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter a valid http:// or https:// URL."
    if parts.username or parts.password:
        return "Credentials in the URL are not allowed."
    host = parts.hostname.lower()
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    if host in LOOPBACK_NAMES or host in settings.AUTOSCALING_METRIC_HOSTS:
        return None
    return (f"Only 127.0.0.1, ::1, localhost or a host in AUTOSCALING_METRIC_HOSTS "
            f"({', '.join(settings.AUTOSCALING_METRIC_HOSTS) or 'none set'}).")


def validate_metric_url(value):
    problem = metric_url_allowed(value) if value else None
    if problem:
        raise ValidationError(problem)


class ScalingPolicy(models.Model):
    engine = models.ForeignKey(Engine, on_delete=models.PROTECT, related_name="scaling_policies",
                               help_text="The Swarm manager the service runs on.")
    service_name = models.CharField(max_length=255, help_text="The Swarm service, by name.")
    description = models.CharField(max_length=255, blank=True)
    enabled = models.BooleanField(default=True)
    min_replicas = models.PositiveIntegerField(default=1, validators=[MaxValueValidator(MAX_REPLICAS)])
    max_replicas = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1),
                                                                      MaxValueValidator(MAX_REPLICAS)])
    metric = models.CharField(max_length=8, choices=Metric.choices, default=Metric.CPU)
    metric_url = models.CharField(max_length=500, blank=True, validators=[validate_metric_url],
                                  help_text="HTTP metric: a URL on 127.0.0.1 (or an allowed host) answering a "
                                            "number, or JSON with the number under metric_key.")
    metric_key = models.CharField(max_length=200, blank=True,
                                  help_text="HTTP metric answering JSON: the number's key, dotted (queue.depth).")
    metric_total = models.BooleanField(default=False, help_text="HTTP metric: the number is a total for the "
                                                                "service (desired = value ÷ target), not a "
                                                                "per-replica figure.")
    mode = models.CharField(max_length=12, choices=Mode.choices, default=Mode.TARGET)
    target = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.001)],
                               help_text="Target tracking: the value to hold (CPU: % of one CPU per task).")
    tolerance = models.PositiveSmallIntegerField(default=10, validators=[MaxValueValidator(100)],
                                                 help_text="Target tracking: % around the target that changes "
                                                           "nothing.")
    scale_up_above = models.FloatField(null=True, blank=True, help_text="Thresholds: scale up above this value.")
    scale_down_below = models.FloatField(null=True, blank=True,
                                         help_text="Thresholds: scale down below this value.")
    max_step_up = models.PositiveIntegerField(default=4, validators=[MinValueValidator(1),
                                                                     MaxValueValidator(MAX_REPLICAS)],
                                              help_text="At most this many replicas added per decision.")
    max_step_down = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1),
                                                                       MaxValueValidator(MAX_REPLICAS)],
                                                help_text="At most this many replicas removed per decision.")
    up_cooldown = models.PositiveIntegerField(default=60, validators=[MaxValueValidator(86400)],
                                              help_text="Seconds after a scaling before the next scale-up.")
    down_cooldown = models.PositiveIntegerField(default=300, validators=[MaxValueValidator(86400)],
                                                help_text="Seconds after a scaling before the next scale-down.")
    interval = models.PositiveIntegerField(default=30, validators=[MinValueValidator(10), MaxValueValidator(86400)],
                                           help_text="Seconds between evaluations (beat checks every 10 s).")
    approval_above = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_REPLICAS)],
        help_text="Scaling up to more than this many replicas waits for an approval (empty: never).")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "engine__environment"
    audit_prefix = "scalingpolicy"
    audit_exclude = ("updated",)

    class Meta:
        ordering = ["engine__environment__name", "engine__name", "service_name"]
        constraints = [models.UniqueConstraint(fields=["engine", "service_name"], name="scalingpolicy_unique")]
        verbose_name_plural = "scaling policies"

    def __str__(self):
        return f"{self.service_name} on {self.engine.name}" if self.engine_id else self.service_name

    def clean(self):
        errors = {}
        if self.service_name and (len(self.service_name) > 255 or any(ord(c) < 32 for c in self.service_name)):
            errors["service_name"] = "Enter a service's name."
        if self.max_replicas is not None and self.min_replicas is not None and self.min_replicas > self.max_replicas:
            errors["max_replicas"] = "The maximum must be at least the minimum."
        if self.metric == Metric.CPU and self.min_replicas == 0:
            errors["min_replicas"] = "A CPU policy needs at least one replica to measure."
        if self.metric == Metric.HTTP and not self.metric_url:
            errors["metric_url"] = "An HTTP metric needs the URL it is read from."
        if self.metric == Metric.CPU and (self.metric_url or self.metric_key or self.metric_total):
            errors["metric_url"] = "The URL, key and total apply to the HTTP metric only."
        if self.mode == Mode.TARGET and self.target is None:
            errors["target"] = "Target tracking needs a target value."
        if self.mode == Mode.THRESHOLDS:
            if self.scale_up_above is None and self.scale_down_below is None:
                errors["scale_up_above"] = "Give an upper threshold, a lower one, or both."
            elif (self.scale_up_above is not None and self.scale_down_below is not None
                  and self.scale_down_below >= self.scale_up_above):
                errors["scale_down_below"] = "The lower threshold must be below the upper one."
        if self.metric_key and not all(part and len(part) <= 64 for part in self.metric_key.split(".")):
            errors["metric_key"] = "Give dotted keys: queue.depth."
        if (self.approval_above is not None and self.min_replicas is not None
                and self.approval_above < self.min_replicas):
            errors["approval_above"] = "The approval limit cannot be below the minimum."
        if errors:
            raise ValidationError(errors)

    def rules(self):
        return Rules(min_replicas=self.min_replicas, max_replicas=self.max_replicas, mode=self.mode,
                     target=self.target, tolerance=self.tolerance / 100.0,
                     total=self.metric == Metric.HTTP and self.metric_total, scale_up_above=self.scale_up_above,
                     scale_down_below=self.scale_down_below, max_step_up=self.max_step_up,
                     max_step_down=self.max_step_down, up_cooldown=self.up_cooldown,
                     down_cooldown=self.down_cooldown)


class Evaluation(models.Model):
    """One evaluation of a policy: what was measured, what was decided, and the job it launched."""

    policy = models.ForeignKey(ScalingPolicy, on_delete=models.CASCADE, related_name="evaluations")
    key = models.CharField(max_length=64)  # "slot:<n>" of the beat, "now:<request id>" of a person
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)  # set once, by whoever runs it
    finished = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.PENDING)
    metric = models.CharField(max_length=8, choices=Metric.choices)
    value = models.FloatField(null=True, blank=True)
    samples = models.JSONField(default=dict, blank=True)  # {"task <id> (slot n)": cpu %} or {"url": ..., "value"}
    current_replicas = models.IntegerField(null=True, blank=True)
    desired_replicas = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=1000, blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by = models.CharField(max_length=150, blank=True)  # empty: the beat

    objects = RestrictedQuerySet.as_manager()
    environment_path = "policy__engine__environment"

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["policy", "key"], name="evaluation_unique_key")]
        indexes = [models.Index(fields=["policy", "-created"])]

    def __str__(self):
        return f"{self.policy.service_name} {self.created:%Y-%m-%d %H:%M:%S} {self.outcome}"
