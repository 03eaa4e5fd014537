"""Celery tasks of the processes app: the periodic scan launches jobs (the scan itself is the
processes.scan job action), and old periodic scan jobs are removed."""
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from ops_portal.jobs.models import Job

from . import services
from .choices import SCAN_ACTION


@shared_task(name="processes.scan_all", ignore_result=True)
def scan_all():
    """One processes.scan job per environment with enabled hosts, unless its previous one is still
    queued or running."""
    return services.scan_everywhere()


@shared_task(name="processes.prune_jobs", ignore_result=True)
def prune_scan_jobs(days=3):
    """Remove the portal's own scan jobs (with their targets and output) that ended more than
    `days` ago; the scans they stored and their audit rows stay."""
    cutoff = timezone.now() - timedelta(days=days)
    old = Job.objects.system().filter(action=SCAN_ACTION, finished__lt=cutoff)
    removed = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:1000])
        if not ids:
            return removed
        Job.objects.filter(pk__in=ids).delete()
        removed += len(ids)
