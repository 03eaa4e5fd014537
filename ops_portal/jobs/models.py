import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.core.choices import Source
from ops_portal.core.crypto import EncryptedTextField
from ops_portal.inventory.models import name_validator

from .choices import FINISHED_STATES, EventKind, JobState, SliceState, TargetState, WaitingKind


class JobTemplate(models.Model):
    """A reusable, parameterised action on a selection of targets in one environment."""

    name = models.CharField(max_length=128, validators=[name_validator])
    description = models.CharField(max_length=255, blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="job_templates")
    action = models.CharField(max_length=64)
    # Which targets: {"kind": "host", "names": [...], "pattern": "web-*", "groups": [...], "tags": [...]}
    selector = models.JSONField(default=dict)
    # Fixed values for the action's parameters, and typed parameters asked for at launch.
    action_params = models.JSONField(default=dict, blank=True)
    parameters = models.JSONField(default=list, blank=True)
    strategy = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1),
                                                                            MaxValueValidator(7 * 86400)])
    target_timeout_seconds = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    concurrency_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="At most this many jobs of this template run at once (empty: no limit).")
    queue = models.CharField(max_length=64, default="default", validators=[name_validator])
    enabled = models.BooleanField(default=True)
    # Bumped on every change, so approvals and schedules can tell an edited template.
    version = models.PositiveIntegerField(default=1, editable=False)
    # Who shaped it last: work on the portal's own machine needs their authority too, not only the
    # launcher's (a schedule's owner must not lend theirs to whoever edited the template).
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_prefix = "jobtemplate"
    audit_exclude = ("updated",)

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="jobtemplate_unique_name")]

    def __str__(self):
        return self.name


class JobQuerySet(RestrictedQuerySet):
    def system(self):
        """The portal's own jobs: launched by the system actor, not by a person (see Job.is_system)."""
        return self.filter(created_by__isnull=True, created_by_name="")

    def by_people(self):
        return self.exclude(created_by__isnull=True, created_by_name="")


class Job(models.Model):
    template = models.ForeignKey(JobTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    template_version = models.PositiveIntegerField(null=True, blank=True)
    name = models.CharField(max_length=200)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="jobs")
    action = models.CharField(max_length=64, db_index=True)
    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    # The frozen plan: parameters (secrets redacted), strategy and timeouts; targets are JobTarget rows.
    params = models.JSONField(default=dict, blank=True)
    secret_params = EncryptedTextField(blank=True, default="")
    strategy = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=3600)
    target_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    plan_hash = models.CharField(max_length=64, editable=False)
    queue = models.CharField(max_length=64, default="default")
    emergency = models.BooleanField(default=False, help_text="Runs during a freeze (admins only, audited).")
    emergency_reason = models.CharField(max_length=500, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Held until then (a maintenance window).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_by_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    request_id = models.CharField(max_length=64, blank=True)
    relaunch_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The approval that covers this job's plan (None when no policy asked for one).
    approval_request = models.ForeignKey("approvals.ApprovalRequest", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    schedule = models.ForeignKey("jobs.JobSchedule", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="jobs")
    # The approval request this job is the dry run for (check mode, --noop): launched when the request
    # opened, read-only, needing no approval itself; the request's page shows what it would change.
    dry_run_for = models.ForeignKey("approvals.ApprovalRequest", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="dry_runs")
    created = models.DateTimeField(default=timezone.now, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    waiting_reason = models.CharField(max_length=300, blank=True)  # in words, for people
    waiting_kind = models.CharField(max_length=16, choices=WaitingKind.choices, blank=True, default=WaitingKind.NONE)
    cancel_requested = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.CharField(max_length=150, blank=True)
    targets_total = models.PositiveIntegerField(default=0)
    targets_done = models.PositiveIntegerField(default=0)
    targets_failed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    last_seq = models.PositiveBigIntegerField(default=0)

    objects = JobQuerySet.as_manager()
    environment_path = "environment"
    audit_exclude = ("secret_params", "heartbeat", "last_seq", "targets_done", "targets_failed")

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["state", "created"]), models.Index(fields=["environment", "-created"])]

    def __str__(self):
        return f"#{self.pk} {self.name}"

    @property
    def is_finished(self):
        return self.state in FINISHED_STATES

    @property
    def is_system(self):
        """The portal's own job (metrics, facts, drift checks): launched by no person. A person's
        job keeps their name after their account is gone, so the name counts too."""
        return self.created_by_id is None and not self.created_by_name


class JobTarget(models.Model):
    """One target of a job's frozen plan, with its result."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="targets")
    index = models.PositiveIntegerField()
    kind = models.CharField(max_length=16)
    ref_id = models.BigIntegerField()
    name = models.CharField(max_length=200)
    # What was approved: the target as resolved at launch (address, image digest, ...).
    fingerprint = models.JSONField(default=dict, blank=True)
    batch = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=TargetState.choices, default=TargetState.PENDING)
    exit_code = models.IntegerField(null=True, blank=True)
    changed = models.BooleanField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    data = models.JSONField(null=True, blank=True)

    environment_path = "job__environment"

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="jobtarget_unique_index")]
        indexes = [models.Index(fields=["kind", "ref_id"])]

    def __str__(self):
        return f"{self.job_id}/{self.name}"


class JobSlice(models.Model):
    """One slice of a sliced job (strategy "slices"/"slice_size"): the targets with index in
    [first, last) run by one worker, with its own heartbeat. Created when the job is claimed."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="slices")
    number = models.PositiveIntegerField()  # 1, 2, ...
    first = models.PositiveIntegerField()
    last = models.PositiveIntegerField()  # exclusive
    state = models.CharField(max_length=8, choices=SliceState.choices, default=SliceState.QUEUED)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    # Why it ended early: a rollout stop, a runner error, its worker lost; empty when it ran through.
    error = models.TextField(blank=True)
    # How the slice's runner ended it: "timed_out" or "canceled" (its cancel reason), else empty.
    outcome = models.CharField(max_length=16, blank=True)

    environment_path = "job__environment"

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="jobslice_unique_number")]
        indexes = [models.Index(fields=["state", "heartbeat"])]

    def __str__(self):
        return f"{self.job_id}/slice {self.number}"

    @property
    def size(self):
        return self.last - self.first


class JobEvent(models.Model):
    """One output line or state change; (job, seq) is unique and increasing."""

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField()
    time = models.DateTimeField()
    kind = models.CharField(max_length=8, choices=EventKind.choices)
    target = models.IntegerField(null=True, blank=True)  # JobTarget.index
    stream = models.CharField(max_length=6, blank=True)
    text = models.TextField(blank=True)
    data = models.JSONField(null=True, blank=True)

    environment_path = "job__environment"

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="jobevent_unique_seq")]

    def __str__(self):
        return f"{self.job_id}#{self.seq} {self.kind}"

    @staticmethod
    def wire(seq, kind, time, text, target, stream, data):
        """An event as streams and clients see it (empty fields left out), from its column values:
        the writer builds it from what it stores, a stream's backlog from rows read as tuples."""
        payload = {"seq": seq, "kind": kind, "time": time.timestamp(), "text": text}
        if target is not None:
            payload["target"] = target
        if stream:
            payload["stream"] = stream
        if data is not None:
            payload["data"] = data
        return payload


class Lease(models.Model):
    """A target is changed by one job at a time: the job holding its lease."""

    target_key = models.CharField(max_length=64, unique=True)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="leases")
    acquired = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.target_key} held by job {self.job_id}"


class FreezeWindow(models.Model):
    """While a freeze is on, nothing new starts in the environment unless marked emergency."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freezes")
    starts = models.DateTimeField()
    ends = models.DateTimeField()
    reason = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["-starts"]

    def __str__(self):
        return f"freeze of {self.environment} {self.starts:%Y-%m-%d %H:%M}–{self.ends:%Y-%m-%d %H:%M}"

    def clean(self):
        if self.starts and self.ends and self.ends <= self.starts:
            raise ValidationError({"ends": "A freeze must end after it starts."})


class MaintenanceWindow(models.Model):
    """A recurring weekly window (e.g. Sundays 02:00 for 3 hours) when held jobs may run."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="maintenance_windows")
    name = models.CharField(max_length=128)
    weekdays = models.JSONField(default=list, help_text="Days it opens: 0 = Monday ... 6 = Sunday.")
    start_time = models.TimeField()
    duration_minutes = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(7 * 1440)])
    timezone = models.CharField(max_length=64, default="UTC")
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["environment__name", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        if not isinstance(self.weekdays, list) or not self.weekdays or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in self.weekdays):
            raise ValidationError({"weekdays": "Give a non-empty list of weekdays from 0 (Monday) to 6 (Sunday)."})
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": "Not a known time zone."}) from None

    def open_at(self, after):
        """(start, end) of the first opening that ends after `after`."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        local = after.astimezone(zone)
        for offset in range(-7, 8):
            day = (local + datetime.timedelta(days=offset)).date()
            if day.weekday() not in self.weekdays:
                continue
            start = datetime.datetime.combine(day, self.start_time, tzinfo=zone)
            end = start + datetime.timedelta(minutes=self.duration_minutes)
            if end > after:
                return start, end
        return None


class JobSchedule(models.Model):
    """Launch a template on a clock: cron (with a time zone), every N seconds, or once."""

    KINDS = [("cron", "Cron"), ("interval", "Interval"), ("once", "Once")]
    MISSED = [("catch_up_once", "Run once when a run was missed"), ("skip", "Skip missed runs")]

    name = models.CharField(max_length=128, validators=[name_validator])
    template = models.ForeignKey(JobTemplate, on_delete=models.CASCADE, related_name="schedules")
    params = models.JSONField(default=dict, blank=True)
    secret_params = EncryptedTextField(blank=True, default="")
    limit = models.CharField(max_length=1000, blank=True, default="",
                             help_text="Only some of the template's targets: names or patterns (jobs.limits).")
    kind = models.CharField(max_length=8, choices=KINDS)
    cron = models.CharField(max_length=120, blank=True, help_text="minute hour day-of-month month day-of-week")
    timezone = models.CharField(max_length=64, default="UTC")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(10)])
    run_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    missed_policy = models.CharField(max_length=16, choices=MISSED, default="catch_up_once")
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+", editable=False)
    # A standing approval of this schedule (policy mode "standing"), valid while its hash matches.
    standing_request = models.ForeignKey("approvals.ApprovalRequest", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+", editable=False)
    config_hash = models.CharField(max_length=64, blank=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+", help_text="Runs launch as this user, who must still be allowed to.")
    owner_name = models.CharField(max_length=150, blank=True)
    # Who changed it last (its parameters shape what runs with the owner's authority).
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "template__environment"
    audit_prefix = "jobschedule"
    audit_exclude = ("updated", "secret_params", "last_run_at")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["template", "name"], name="jobschedule_unique_name")]

    def __str__(self):
        return self.name


class ScheduleRun(models.Model):
    """One firing of a schedule; (schedule, slot) is unique so a restarted beat cannot run it twice."""

    schedule = models.ForeignKey(JobSchedule, on_delete=models.CASCADE, related_name="runs")
    slot = models.DateTimeField()
    fired_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=24)  # launched, skipped_missed, needs_approval, refused, failed
    detail = models.CharField(max_length=500, blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    environment_path = "schedule__template__environment"

    class Meta:
        ordering = ["-slot"]
        constraints = [models.UniqueConstraint(fields=["schedule", "slot"], name="schedulerun_once_per_slot")]

    def __str__(self):
        return f"{self.schedule_id}@{self.slot:%Y-%m-%d %H:%M}: {self.outcome}"
