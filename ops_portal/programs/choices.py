"""Choices of the programs app: managers, program states, history events, and the actions offered."""
from django.db import models


class Manager(models.TextChoices):
    SUPERVISORD = "supervisord", "supervisord"
    SYSTEMD = "systemd", "systemd"
    PM2 = "pm2", "PM2"


class ProgramState(models.TextChoices):
    """The backends' normalised states, plus `absent` for a program the portal holds a spec of that
    its manager does not list (not applied yet, or removed outside the portal)."""

    RUNNING = "running", "Running"
    STARTING = "starting", "Starting"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    EXITED = "exited", "Exited"
    BACKOFF = "backoff", "Restarting (backoff)"
    FATAL = "fatal", "Gave up (fatal)"
    PAUSED = "paused", "Paused"
    UNKNOWN = "unknown", "Unknown"
    ABSENT = "absent", "Not on the host"


class EventKind(models.TextChoices):
    STARTED = "started", "Started"
    EXITED = "exited", "Exited"
    CRASHED = "crashed", "Crashed"
    RESTARTED = "restarted", "Restarted"
    OOM = "oom", "Stopped over its memory limit"
    STOPPED = "stopped", "Stopped"


RUNNING_STATES = (ProgramState.RUNNING, ProgramState.STARTING, ProgramState.PAUSED)
DOWN_STATES = (ProgramState.EXITED, ProgramState.BACKOFF, ProgramState.FATAL)

# The actions a person runs on a program (job action "program.<name>"), in the order pages show them.
OPERATIONS = ("start", "stop", "restart", "reload", "signal", "pause", "resume", "scale", "enable", "disable",
              "freeze", "thaw")
# Every action a manager may offer (schedulers.process.base.ACTIONS).
ALL_ACTIONS = (*OPERATIONS, "apply", "remove", "logs")
SIGNALS = ("HUP", "INT", "QUIT", "KILL", "TERM", "USR1", "USR2", "ALRM", "WINCH", "CONT", "STOP")

# Alerts of programs in a crash loop (monitoring.services.raise_external).
ALERT_SOURCE = "program_crash_loop"
