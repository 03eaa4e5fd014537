"""Processes as the latest scan of each host saw them, and the scans themselves.

A scan replaces its host's Process rows in bulk (store.py). A process that lived through the scan
keeps its row id: the id names one process (host, pid, start time), so a job planned on it, a
link or an approval never lands on another process that got the same pid.
"""
import datetime

from django.db import models

from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.inventory.models import Host

from .choices import STATES, CpuBasis, OwnerKind, ScanSource


class ProcessScan(models.Model):
    """One scan of one host: how it went, and what changed since the scan before."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="process_scans")
    time = models.DateTimeField(db_index=True)  # when the host was read
    source = models.CharField(max_length=8, choices=ScanSource.choices, blank=True)
    cpu_basis = models.CharField(max_length=8, choices=CpuBasis.choices, blank=True)
    boot_time = models.FloatField(default=0.0)  # the host's, to tell a reboot from restarts
    process_count = models.PositiveIntegerField(default=0)
    elapsed = models.FloatField(default=0.0)  # seconds, the round trip included
    bytes = models.PositiveIntegerField(default=0)  # what came back over SSH (0 on the portal's machine)
    new_count = models.PositiveIntegerField(default=0)
    gone_count = models.PositiveIntegerField(default=0)
    restarted_count = models.PositiveIntegerField(default=0)
    # {"new": [[pid, name], ...], "gone": [...], "restarted": [[old pid, new pid, name], ...]}, each
    # list at most CHANGES_KEPT long; the counts above are the whole truth.
    changes = models.JSONField(default=dict, blank=True)
    first = models.BooleanField(default=False)  # no scan before it: nothing is "new"
    error = models.CharField(max_length=500, blank=True)  # a failed scan; the host's rows stay as they were
    job_id = models.BigIntegerField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "host__environment"

    class Meta:
        ordering = ["-time", "-pk"]
        indexes = [models.Index(fields=["host", "-time"])]

    def __str__(self):
        return f"{self.host_id} scanned at {self.time:%Y-%m-%d %H:%M:%S}"


class Process(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="processes")
    pid = models.PositiveIntegerField()
    ppid = models.PositiveIntegerField()
    user = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    cmdline = models.JSONField(default=list)  # the arguments (each cut at 1024 characters by the collector)
    command = models.TextField()  # the arguments joined, for search and display
    state = models.CharField(max_length=2)  # the kernel's letter (STATES)
    cpu_percent = models.FloatField(default=0.0)
    cpu_time = models.FloatField(default=0.0)  # seconds, user + system
    rss = models.PositiveBigIntegerField(default=0)  # bytes
    threads = models.PositiveIntegerField(default=1)
    fds = models.PositiveIntegerField(null=True)  # None: not readable by the scan
    start_time = models.FloatField()  # unix seconds, two decimals: with pid, the process's identity
    ports = models.JSONField(default=list)  # [[address, port]] listening TCP sockets
    port_list = models.CharField(max_length=500, blank=True)  # " 22 8080 ": port filters on any database
    owner_kind = models.CharField(max_length=16, choices=OwnerKind.choices, blank=True)
    owner_name = models.CharField(max_length=255, blank=True)
    main = models.BooleanField(default=False)  # the owner's own process (the manager's direct child)
    container_id = models.CharField(max_length=64, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "host__environment"

    class Meta:
        ordering = ["host", "pid"]
        constraints = [models.UniqueConstraint(fields=["host", "pid"], name="process_unique_host_pid")]
        indexes = [models.Index(fields=["-cpu_percent"]), models.Index(fields=["-rss"]),
                   models.Index(fields=["owner_kind", "owner_name"])]

    def __str__(self):
        return f"{self.name} ({self.pid})"

    @property
    def started(self):
        return datetime.datetime.fromtimestamp(self.start_time, tz=datetime.UTC)

    @property
    def state_label(self):
        return STATES.get(self.state, self.state)

    @property
    def owner(self):
        """"supervisord program web", "container 3f2a…", or ""."""
        if not self.owner_kind:
            return ""
        return f"{self.get_owner_kind_display()} {self.owner_name}"
