from django.db import models

SCAN_ACTION = "processes.scan"
# The job actions on one process; each sends what its name says (control.py on the host).
SIGNAL_ACTION, STOP_ACTION, KILL_ACTION = "process.signal", "process.stop", "process.kill"
PAUSE_ACTION, RESUME_ACTION = "process.pause", "process.resume"
PROCESS_ACTIONS = (SIGNAL_ACTION, STOP_ACTION, PAUSE_ACTION, RESUME_ACTION, KILL_ACTION)
# Changes kept on a scan, per kind (new, gone, restarted): enough to show, bounded for big hosts.
CHANGES_KEPT = 50
SCANS_KEPT = 50  # scans kept per host (their counts and changes)


class OwnerKind(models.TextChoices):
    NONE = "", "—"
    SUPERVISORD = "supervisord", "supervisord program"
    SYSTEMD = "systemd", "systemd unit"
    PM2 = "pm2", "PM2 app"
    CONTAINER = "container", "container"


MANAGED_KINDS = (OwnerKind.SUPERVISORD, OwnerKind.SYSTEMD, OwnerKind.PM2)


class ScanSource(models.TextChoices):
    PSUTIL = "psutil", "psutil"
    PROC = "proc", "/proc"


class CpuBasis(models.TextChoices):
    LIFETIME = "lifetime", "average since the process started"
    INTERVAL = "interval", "sampled over an interval"
    DELTA = "delta", "since the previous scan"


# What the kernel's state letters mean (ps(1)).
STATES = {"R": "running", "S": "sleeping", "D": "uninterruptible wait", "T": "stopped", "t": "traced",
          "Z": "zombie", "X": "dead", "I": "idle", "K": "wakekill", "W": "waking", "P": "parked", "?": "unknown"}
