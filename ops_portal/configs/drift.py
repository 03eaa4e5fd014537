"""Drift reports: the last check of each configuration on each host, and the alerts that follow it.

Called by the config actions from the job's writer thread (ctx.after), by apply jobs once a file
is back in line, and by the drift launcher when hosts or templates left a configuration's scope.
A report that turns drifted raises an external alert (source "config_drift", one key per host and
configuration); one that is back in line resolves it.
"""
from django.db import transaction
from django.utils import timezone

from ops_portal.inventory.models import Host

from . import alerts
from .models import ConfigTemplate, DriftReport

MAX_DIFF = 256 * 1024


def _cut(diff):
    if len(diff) <= MAX_DIFF:
        return diff
    return diff[:MAX_DIFF] + "\n… diff cut at 256 KiB\n"


def store_results(host_id, job_id, results):
    """Record checks of configurations on one host.

    results: [{"config": id, "version": n, "drifted": True|False|None, "changes": [...], "diff": str,
    "error": str}]; drifted None means the check could not tell (error says why).
    """
    now = timezone.now()
    with transaction.atomic():
        host = Host.objects.select_related("environment").filter(pk=host_id).first()
        if host is None:
            return []
        configs = ConfigTemplate.objects.in_bulk([r["config"] for r in results])
        stored = []
        for result in results:
            config = configs.get(result["config"])
            if config is None:  # deleted while the job ran
                continue
            DriftReport.objects.get_or_create(config=config, host=host, defaults={
                "config_version": result.get("version") or config.version, "checked": now})
            report = DriftReport.objects.select_for_update().get(config=config, host=host)
            _update(report, config, host, job_id, now, result)
            stored.append(report)
    return stored


def _update(report, config, host, job_id, now, result):
    drifted = result.get("drifted")
    was_drifted = report.drifted is True
    report.config_version = result.get("version") or config.version
    report.drifted = drifted
    report.changes = list(result.get("changes") or [])
    report.diff = "" if config.sensitive else _cut(result.get("diff") or "")
    report.error = (result.get("error") or "")[:4000]
    report.checked = now
    report.job_id = job_id
    if drifted is True:
        report.drifted_since = report.drifted_since if was_drifted and report.drifted_since else now
        alerts.raise_drift(config, host, report)
        report.alerted = True
    elif drifted is False:
        report.drifted_since = None
        if report.alerted:
            alerts.resolve_drift(report)
            report.alerted = False
    report.save()


def mark_applied(host_id, job_id, applied):
    """Files an apply job wrote (or found in line) are in line now: applied is [(config id, version)]."""
    return store_results(host_id, job_id, [{"config": config_id, "version": version, "drifted": False}
                                           for config_id, version in applied])


def forget(reports):
    """Remove reports (their host or configuration left the scope), resolving their alerts."""
    with transaction.atomic():
        for report in reports:
            if report.alerted:
                alerts.resolve_drift(report)
        removed = DriftReport.objects.filter(pk__in=[r.pk for r in reports]).delete()[0]
    return removed


def prune(environment, in_scope):
    """Forget the environment's reports whose (configuration, host) is not in `in_scope` any more
    (in_scope maps each enabled configuration's id to the ids of the hosts it selects now), and
    resolve drift alerts left without a report (their host or configuration was deleted)."""
    reports = list(DriftReport.objects.filter(config__environment=environment))
    stale = [r for r in reports if r.host_id not in in_scope.get(r.config_id, ())]
    removed = forget(stale) if stale else 0
    with transaction.atomic():
        alerts.resolve_orphans(environment, {r.alert_key for r in reports if r.alerted and r not in stale})
    return removed
