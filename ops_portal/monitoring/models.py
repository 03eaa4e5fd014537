"""Metric time series (raw samples and rollups), alert rules and alerts.

Time series are built for many hosts: a Series row names (host, metric, mount) once, and each
sample is 16 bytes of data (unix seconds, series id, a 4-byte float) keyed by (series, time), so
the primary key is the index every read uses. Rollups keep the average and maximum per 5 minutes
and per hour. Times are unix seconds (bigint): bucketing is integer arithmetic, the same SQL on
PostgreSQL and SQLite.
"""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.inventory.models import TAG, Host, HostGroup, name_validator

from .choices import (
    METRIC_KINDS,
    METRIC_LABELS,
    OPEN_STATES,
    RULE_METRICS,
    AlertState,
    Comparator,
    ContainerMetric,
    Metric,
    ProgramMetric,
    RuleKind,
    ServiceMetric,
    Severity,
    SubjectKind,
)

MAX_FOR_SECONDS = 86400  # raw samples are kept 48 h at least; a rule looks back at most a day
mount_validator = RegexValidator(r"^/[^\x00\n]{0,254}\Z", "Enter an absolute mount point such as /var.")
tag_validator = RegexValidator(TAG, "Enter one tag (letters, digits, . _ : -).")
name_filter_validator = RegexValidator(r"^[^\x00-\x1f]{1,255}\Z", "Enter a name or a glob such as web-* on one line.")


class RealField(models.FloatField):
    """A single-precision float (4 bytes): plenty for percentages and load averages."""

    def db_type(self, connection):
        return "real"


class Series(models.Model):
    """One metric of one host (and mount, for disks)."""

    id = models.AutoField(primary_key=True)  # 4 bytes in every sample row
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="metric_series")
    metric = models.CharField(max_length=16, choices=Metric.choices)
    mount = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "host__environment"

    class Meta:
        verbose_name_plural = "series"
        constraints = [models.UniqueConstraint(fields=["host", "metric", "mount"], name="series_unique_key")]

    def __str__(self):
        return f"{self.host_id}/{self.metric}{self.mount and ' ' + self.mount}"


class Sample(models.Model):
    """One raw sample, kept 48 hours by default. Migration 0002 adds an index on time for
    retention deletes (BRIN on PostgreSQL: a few pages for millions of rows appended in order)."""

    pk = models.CompositePrimaryKey("series_id", "time")
    time = models.BigIntegerField()  # unix seconds
    series = models.ForeignKey(Series, on_delete=models.CASCADE, db_index=False, related_name="+")
    value = RealField()

    environment_path = "series__host__environment"

    def __str__(self):
        return f"{self.series_id}@{self.time}={self.value}"


class Rollup(models.Model):
    """The average and maximum of a series over a bucket of `step` seconds starting at `time`."""

    pk = models.CompositePrimaryKey("series_id", "step", "time")
    time = models.BigIntegerField()
    series = models.ForeignKey(Series, on_delete=models.CASCADE, db_index=False, related_name="+")
    avg = RealField()
    max = RealField()
    step = models.SmallIntegerField()  # 300 or 3600
    count = models.SmallIntegerField()  # raw samples behind the bucket

    environment_path = "series__host__environment"

    def __str__(self):
        return f"{self.series_id}@{self.time}/{self.step}s avg={self.avg} max={self.max}"


class EnvironmentRollup(models.Model):
    """The hosts' series of one metric in one environment over one rollup bucket: the sum and the
    number of their bucket averages (so an average over several environments stays the average
    over all their series) and the largest maximum. Written by the rollup task from the Rollup
    rows of the same step and bucket (container series, mount "ctr:…", left out); the dashboard's
    fleet charts read these, a few rows per bucket however many hosts there are."""

    pk = models.CompositePrimaryKey("environment_id", "metric", "step", "time")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, db_index=False, related_name="+")
    metric = models.CharField(max_length=16, choices=Metric.choices)
    step = models.SmallIntegerField()  # 300 or 3600, as Rollup
    time = models.BigIntegerField()
    total = models.FloatField()  # the sum of the series' averages
    series = models.IntegerField()  # how many series (for CPU and memory: hosts)
    max = RealField()

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    def __str__(self):
        return f"{self.environment_id}/{self.metric}@{self.time}/{self.step}s"

    @property
    def avg(self):
        return self.total / self.series


class RollupState(models.Model):
    """How far rollups of one step are complete (unix seconds, exclusive)."""

    step = models.SmallIntegerField(primary_key=True)
    done_until = models.BigIntegerField()

    environment_path = None

    def __str__(self):
        return f"{self.step}s rollups until {self.done_until}"


class AlertRule(models.Model):
    """A metric rule: when a metric of hosts in scope passes a threshold for long enough, an alert
    fires; it resolves when the value comes back past the clear threshold (hysteresis).

    A container metric rule (kind "container_metric"): the same over the running containers of the
    environment whose name matches the name filter (their series are sampled by the container stats
    jobs); one alert per container. A Swarm service metric rule (kind "service_metric"): the same
    over the services, averaged over each one's running tasks by the sampling jobs; one alert per
    service. A program metric rule (kind "program_metric"): the same over the
    programs of the environment's hosts (name filter, host group and tag), summed over each program's
    processes by the process scans (programs/metrics.py); one alert per program.

    A state rule (any other kind): when a container, Swarm service or program of the
    environment is not running (short of tasks) for long enough, an alert about it fires; it
    resolves once the object is healthy again, gone or out of scope (monitoring/states.py)."""

    name = models.CharField(max_length=128, validators=[name_validator])
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="alert_rules")
    enabled = models.BooleanField(default=True)
    kind = models.CharField(max_length=32, choices=RuleKind.choices, default=RuleKind.METRIC)
    metric = models.CharField(max_length=16, blank=True,  # metric rules only
                              choices=[*Metric.choices, *ContainerMetric.choices, *ServiceMetric.choices,
                                       *ProgramMetric.choices])
    comparator = models.CharField(max_length=1, choices=Comparator.choices, default=Comparator.GT)
    threshold = models.FloatField(null=True, blank=True)  # metric rules only
    clear_threshold = models.FloatField(
        null=True, blank=True, help_text="Resolve only once the value is back past this (empty: the threshold).")
    for_seconds = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_FOR_SECONDS)],
        help_text="How long the condition must hold before the alert fires.")
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    # Scope: the environment's enabled hosts, narrowed by a group and/or a tag.
    group = models.ForeignKey(HostGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="alert_rules")
    tag = models.CharField(max_length=63, blank=True, validators=[tag_validator])
    mount = models.CharField(max_length=255, blank=True, validators=[mount_validator],
                             help_text="Disk rules: only this mount point (empty: every mount).")
    # A job template of the rule's environment that helps (checked by services before any write).
    runbook = models.ForeignKey("jobs.JobTemplate", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="alert_rules")
    name_filter = models.CharField(
        max_length=255, blank=True, validators=[name_filter_validator],
        help_text="State rules: only objects whose name matches this glob, e.g. web-* (empty: all).")
    description = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_exclude = ("updated",)

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="alertrule_unique_name")]

    def __str__(self):
        return self.name

    @property
    def is_state(self):
        return self.kind not in METRIC_KINDS

    @property
    def subjects_label(self):
        """What a rule watches, for lists: "hosts", "containers", "Swarm services", "programs"."""
        return {RuleKind.CONTAINER_NOT_RUNNING: "containers", RuleKind.CONTAINER_METRIC: "containers",
                RuleKind.SERVICE_SHORT: "Swarm services", RuleKind.SERVICE_METRIC: "Swarm services",
                RuleKind.PROGRAM_NOT_RUNNING: "programs", RuleKind.PROGRAM_METRIC: "programs"}.get(self.kind, "hosts")

    @property
    def scope_label(self):
        """Whom the rule watches, for lists: "all hosts", "group web, tag db", "containers named web-*",
        "programs named worker-* on tag db", "Swarm services"."""
        hosts = ", ".join(part for part in (f"group {self.group.name}" if self.group_id else "",
                                            f"tag {self.tag}" if self.tag else "") if part)
        if self.kind == RuleKind.METRIC:
            return hosts or "all hosts"
        if self.kind in (RuleKind.CONTAINER_METRIC, RuleKind.SERVICE_METRIC, RuleKind.PROGRAM_METRIC):
            what = self.subjects_label
            label = f"{what} named {self.name_filter}" if self.name_filter else f"all {what}"
        else:
            label = self.subjects_label
        return f"{label} on {hosts}" if hosts else label

    @property
    def clear_at(self):
        return self.threshold if self.clear_threshold is None else self.clear_threshold

    def describe(self):
        held = f" for {self.for_seconds}s" if self.for_seconds else ""
        if self.is_state:
            named = f" named {self.name_filter}" if self.name_filter else ""
            return f"{RuleKind(self.kind).label.lower()}{named}{held}"
        where = f" on {self.mount}" if self.mount else ""
        named = f" of {self.subjects_label} named {self.name_filter}" if self.name_filter else ""
        threshold = f"{self.threshold:g}" if self.threshold is not None else "?"
        return f"{self.metric}{named} {self.comparator} {threshold}{where}{held}"

    @property
    def metric_label(self):
        return METRIC_LABELS.get(self.metric, self.metric)

    def clean(self):
        errors = self._state_errors() if self.is_state else self._metric_errors()
        if self.group_id and self.environment_id and self.group.environment_id != self.environment_id:
            errors["group"] = "The group belongs to another environment."
        if errors:
            raise ValidationError(errors)

    def _state_errors(self):
        """A state rule has no metric, threshold or mount (its comparator is ignored); container and
        service rules are scoped by environment and name (they are not hosts of a group)."""
        errors = {}
        what = RuleKind(self.kind).label.lower()
        for field in ("metric", "mount"):
            if getattr(self, field):
                errors[field] = f"A '{what}' rule has no {field}."
        for field in ("threshold", "clear_threshold"):
            if getattr(self, field) is not None:
                errors[field] = f"A '{what}' rule has no {field.replace('_', ' ')}."
        if self.kind != RuleKind.PROGRAM_NOT_RUNNING:
            if self.group_id:
                errors["group"] = f"A '{what}' rule is scoped by environment and name filter, not host group."
            if self.tag:
                errors["tag"] = f"A '{what}' rule is scoped by environment and name filter, not host tag."
        return errors

    def _metric_errors(self):
        errors = {}
        allowed = RULE_METRICS[self.kind]
        if not self.metric:
            errors["metric"] = "A metric rule needs a metric."
        elif self.metric not in allowed:
            errors["metric"] = (f"A '{RuleKind(self.kind).label.lower()}' rule watches one of: "
                                f"{', '.join(allowed)}.")
        if self.threshold is None:
            errors["threshold"] = "A metric rule needs a threshold."
        if self.kind in (RuleKind.CONTAINER_METRIC, RuleKind.SERVICE_METRIC):
            for field in ("group", "tag"):
                if getattr(self, field + ("_id" if field == "group" else "")):
                    errors[field] = (f"A {RuleKind(self.kind).label.lower()} rule is scoped by environment and "
                                     f"name filter, not host {field}.")
        elif self.kind == RuleKind.METRIC and self.name_filter:
            errors["name_filter"] = "Host metric rules are scoped by group and tag, not by name."
        if self.mount and self.metric != Metric.DISK_PERCENT:
            errors["mount"] = "Only disk rules filter by mount."
        if self.clear_threshold is not None and self.threshold is not None:
            if self.comparator == Comparator.GT and self.clear_threshold > self.threshold:
                errors["clear_threshold"] = "For an 'above' rule the clear threshold is at most the threshold."
            if self.comparator == Comparator.LT and self.clear_threshold < self.threshold:
                errors["clear_threshold"] = "For a 'below' rule the clear threshold is at least the threshold."
        return errors


class PendingState(models.Model):
    """Since when a state rule's evaluation has seen a subject failing, for subjects whose own rows
    keep no time of the change (a Swarm service short of tasks, an unhealthy or restarting
    container, a program without a stop or exit time). Written and removed by the evaluation only;
    gone with the rule."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="+")
    subject_kind = models.CharField(max_length=16, choices=SubjectKind.choices)
    subject_id = models.PositiveBigIntegerField()
    since = models.DateTimeField()

    objects = RestrictedQuerySet.as_manager()
    environment_path = "rule__environment"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "subject_kind", "subject_id"],
                                               name="pendingstate_unique_subject")]

    def __str__(self):
        return f"rule {self.rule_id}: {self.subject_kind} {self.subject_id} failing since {self.since}"


class Alert(models.Model):
    """A problem on a host (or an environment) from a rule or an external source."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    source = models.CharField(max_length=32, db_index=True)  # "rule", or e.g. "drift", "compliance"
    key = models.CharField(max_length=200)  # one open alert per (source, key)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="alerts")
    host = models.ForeignKey(Host, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    host_name = models.CharField(max_length=128, blank=True)
    # What the alert is about (its page lists it): the host, or a container, Swarm service or
    # program by id (no foreign key: the monitoring app sits below those apps) and by name (kept
    # when the object is gone). Empty for an environment-wide alert.
    subject_kind = models.CharField(max_length=16, choices=SubjectKind.choices, blank=True)
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject_name = models.CharField(max_length=255, blank=True)
    metric = models.CharField(max_length=16, blank=True)
    mount = models.CharField(max_length=255, blank=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.FIRING)
    summary = models.CharField(max_length=500)
    value = models.FloatField(null=True, blank=True)  # when it fired, then when it resolved
    threshold = models.FloatField(null=True, blank=True)
    fired_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    acknowledged_by_name = models.CharField(max_length=150, blank=True)
    note = models.TextField(blank=True, max_length=2000)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["-fired_at", "-pk"]
        indexes = [models.Index(fields=["environment", "state"]), models.Index(fields=["host", "-fired_at"]),
                   models.Index(fields=["subject_kind", "subject_id", "-fired_at"], name="alert_subject_fired")]
        constraints = [
            models.UniqueConstraint(fields=["source", "key"], condition=Q(state__in=OPEN_STATES),
                                    name="alert_one_open_per_key"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.summary}"[:200]

    @property
    def is_open(self):
        return self.state in OPEN_STATES

    def clean(self):
        if bool(self.subject_kind) != (self.subject_id is not None):
            raise ValidationError({"subject_id": "A subject has both a kind and an id, or neither."})


def rule_key(rule_id, host_id, mount=""):
    """The key of a metric rule's alert: one open alert per (rule, host, mount)."""
    return f"{rule_id}:{host_id}:{mount}"


def state_key(rule_id, subject_kind, subject_id):
    """The key of a state rule's alert: one open alert per (rule, subject)."""
    return f"{rule_id}:{subject_kind}:{subject_id}"

