"""Drift found by puppet.drift (`puppet apply --noop`): resources out of sync with a project's manifest
open an external alert through monitoring (source "puppet_drift", one per host, project and manifest),
the same path configuration drift takes; a check that finds the host in line resolves it."""
import hashlib

from django.db import transaction

from ops_portal.inventory.models import Host
from ops_portal.monitoring import services as monitoring

ALERT_SOURCE = "puppet_drift"
SEVERITY = "warning"


def alert_key(host_id, project_id, manifest):
    digest = hashlib.sha256(manifest.encode()).hexdigest()[:16]
    return f"host:{host_id}:project:{project_id}:manifest:{digest}"


def record(host_id, project_id, project_name, manifest, revision, resources):
    """Raise or resolve the drift alert of one host from the resource counts of a noop run."""
    with transaction.atomic():
        host = Host.objects.select_related("environment").filter(pk=host_id).first()
        if host is None:
            return None
        key = alert_key(host_id, project_id, manifest)
        drifted = resources.get("out_of_sync", 0)
        if drifted:
            summary = (f"{drifted} Puppet resource{'s' if drifted != 1 else ''} on {host.name} drifted from "
                       f"{manifest} of project {project_name} (revision {revision[:12]})")
            return monitoring.raise_external(ALERT_SOURCE, key, environment=host.environment, host=host,
                                             severity=SEVERITY, summary=summary)
        return monitoring.resolve_external(ALERT_SOURCE, key,
                                           resolution=f"{host.name} is back in line with {manifest}")
