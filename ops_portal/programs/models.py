"""Programs that process managers run on hosts, the managers each host has, and restart history.

HostManager and the observed fields of Program are written by refresh jobs (observations, not
audited per row, like host facts); a program's desired spec and description are changed by people
through services (audited). ProgramEvent rows are the restart history the refreshes saw.
"""
from django.db import models

from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.inventory.models import Host

from .choices import EventKind, Manager, ProgramState


class HostManager(models.Model):
    """One process manager on one host, as the last refresh found it."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="program_managers")
    manager = models.CharField(max_length=16, choices=Manager.choices)
    available = models.BooleanField(default=False)
    version = models.CharField(max_length=64, blank=True)
    # Why it is not available (not installed, down, unknown version), or its state when it is.
    reason = models.CharField(max_length=500, blank=True)
    supports = models.JSONField(default=list, blank=True)  # actions offered on this host
    why_not = models.JSONField(default=dict, blank=True)  # {action: why it is not offered}
    checked = models.DateTimeField(null=True, blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "host__environment"

    class Meta:
        ordering = ["host__name", "manager"]
        constraints = [models.UniqueConstraint(fields=["host", "manager"], name="hostmanager_one_per_host")]

    def __str__(self):
        return f"{self.manager} on {self.host_id}"

    def offers(self, action):
        return self.available and action in self.supports

    def refusal(self, action):
        """Why `action` is not offered here, in plain words ("" when it is)."""
        if self.offers(action):
            return ""
        if not self.available:
            return f"{self.get_manager_display()} is not available on this host: {self.reason or 'not checked yet'}"
        return self.why_not.get(action) or f"{self.get_manager_display()} does not offer {action} here"


class Program(models.Model):
    """A program (supervisord program or group, systemd service unit, PM2 app) on one host."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="programs")
    manager = models.CharField(max_length=16, choices=Manager.choices)
    name = models.CharField(max_length=255)
    group = models.CharField(max_length=128, blank=True)
    description = models.CharField(max_length=255, blank=True)
    # Portal-managed: the portal wrote (or is to write) its configuration from `spec`.
    managed = models.BooleanField(default=False)
    # The desired ProgramSpec fields, except the name (schedulers.process.base.ProgramSpec).
    spec = models.JSONField(null=True, blank=True)
    # What the last successful program.apply wrote, and when.
    applied_spec = models.JSONField(null=True, blank=True, editable=False)
    applied_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    # Observed by refreshes and after each action --------------------------------------------
    present = models.BooleanField(default=False, editable=False)  # its manager listed it last time
    state = models.CharField(max_length=16, choices=ProgramState.choices, default=ProgramState.UNKNOWN,
                             editable=False)
    raw_state = models.CharField(max_length=128, blank=True, editable=False)
    pids = models.JSONField(default=list, blank=True, editable=False)
    restarts = models.PositiveIntegerField(null=True, blank=True, editable=False)
    exit_code = models.IntegerField(null=True, blank=True, editable=False)
    exit_at = models.DateTimeField(null=True, blank=True, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)
    crash_loop = models.BooleanField(default=False, editable=False)
    crash_loop_since = models.DateTimeField(null=True, blank=True, editable=False)
    alerted = models.BooleanField(default=False, editable=False)  # a crash-loop alert is open
    exit_reason = models.CharField(max_length=500, blank=True, editable=False)
    stderr_tail = models.JSONField(default=list, blank=True, editable=False)
    limits = models.JSONField(default=dict, blank=True, editable=False)  # {limit: {"value", "enforced_by"}}
    error_count = models.PositiveIntegerField(null=True, blank=True, editable=False)
    error_window = models.CharField(max_length=120, blank=True, editable=False)
    errors_counted = models.DateTimeField(null=True, blank=True, editable=False)
    details = models.JSONField(default=dict, blank=True, editable=False)  # the manager's own extra facts
    updated = models.DateTimeField(null=True, blank=True, editable=False)  # last observation

    objects = RestrictedQuerySet.as_manager()
    environment_path = "host__environment"
    audit_exclude = ("present", "state", "raw_state", "pids", "restarts", "exit_code", "exit_at", "started_at",
                     "stopped_at", "crash_loop", "crash_loop_since", "alerted", "exit_reason", "stderr_tail",
                     "limits", "error_count", "error_window", "errors_counted", "details", "updated")

    class Meta:
        ordering = ["host__name", "manager", "name"]
        constraints = [models.UniqueConstraint(fields=["host", "manager", "name"], name="program_unique_name")]
        indexes = [models.Index(fields=["manager", "state"]), models.Index(fields=["crash_loop", "host"]),
                   # the programs page's order, read from the index instead of sorted
                   models.Index(models.F("crash_loop").desc(), "name", "host", "manager", name="program_list_order")]

    def __str__(self):
        return f"{self.name} ({self.manager})"

    @property
    def metric_key(self):
        """The key of the program's metric series (monitoring Series.mount): "prog:<id>"."""
        return f"prog:{self.pk}"


class ProgramEvent(models.Model):
    """One thing that happened to a program (restart history), as a refresh or an action saw it."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="events")
    time = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    exit_code = models.IntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    job_id = models.BigIntegerField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "program__host__environment"

    class Meta:
        ordering = ["-time", "-pk"]
        indexes = [models.Index(fields=["program", "-time"])]

    def __str__(self):
        return f"{self.program_id} {self.kind} at {self.time:%Y-%m-%d %H:%M:%S}"
