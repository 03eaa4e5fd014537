"""Crash-loop alerts of programs, through the monitoring app (which sits below this one).

A program is in a crash loop when its manager says so (supervisord BACKOFF/FATAL or restarts
packed in a short window, systemd auto-restart or start-limit-hit, PM2 errored or unstable
restarts). The alert fires once the loop has lasted `alert_after` seconds (a single crash that
recovers at once raises nothing) and resolves when the program is out of the loop, removed or gone.
"""
from ops_portal.monitoring import services as monitoring

from .choices import ALERT_SOURCE

SEVERITY = "critical"
DEFAULT_ALERT_AFTER = 60  # seconds a crash loop lasts before it is alerted


def key(program_id):
    return f"program:{program_id}"


def summary(program, host):
    return f"{program.name} on {host.name} is in a crash loop under {program.get_manager_display()}"


def sync(program, host, now, alert_after):
    """Raise or resolve the program's alert as its crash-loop state says (caller's transaction).
    Returns True when `alerted` changed."""
    lasting = (program.crash_loop and program.crash_loop_since is not None
               and (now - program.crash_loop_since).total_seconds() >= alert_after)
    if lasting and not program.alerted:
        monitoring.raise_external(ALERT_SOURCE, key(program.pk), environment=host.environment, host=host,
                                  severity=SEVERITY, summary=summary(program, host),
                                  subject=("program", program.pk, program.name))
        program.alerted = True
        return True
    if not program.crash_loop and program.alerted:
        resolve(program.pk, "the program is out of its crash loop")
        program.alerted = False
        return True
    return False


def resolve(program_id, resolution):
    monitoring.resolve_external(ALERT_SOURCE, key(program_id), resolution=resolution)
