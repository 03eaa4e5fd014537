"""External alerts for drifted configurations, through the monitoring app (which sits below this one)."""
from ops_portal.monitoring import services as monitoring
from ops_portal.monitoring.choices import OPEN_STATES
from ops_portal.monitoring.models import Alert

from .models import ALERT_SOURCE, alert_key

SEVERITY = "warning"


def summary(config, host, report):
    changes = ", ".join(report.changes) or "differs"
    return f"{config.path} on {host.name} drifted from configuration {config.name} ({changes})"


def raise_drift(config, host, report):
    """Open (or keep open) the alert of this host and configuration, in the caller's transaction."""
    monitoring.raise_external(ALERT_SOURCE, alert_key(host.pk, config.pk), environment=config.environment,
                              host=host, severity=SEVERITY, summary=summary(config, host, report))


def resolve_drift(report):
    monitoring.resolve_external(ALERT_SOURCE, alert_key(report.host_id, report.config_id),
                                resolution="the file is back in line with its configuration")


def resolve_orphans(environment, keep):
    """Resolve the environment's open drift alerts whose key is not in `keep` (their report went with
    a deleted host or template)."""
    keys = set(Alert.objects.filter(source=ALERT_SOURCE, environment=environment, state__in=OPEN_STATES)
               .values_list("key", flat=True)) - set(keep)
    for key in sorted(keys):
        monitoring.resolve_external(ALERT_SOURCE, key, resolution="the host or configuration is gone")
    return len(keys)
