"""Celery tasks of monitoring: launch the metrics jobs, evaluate alert rules, roll up and prune
metrics. Collection itself is a job (action host.metrics, job_actions.py); monitoring sits above
the jobs engine, so it launches those jobs itself."""
import logging
from datetime import timedelta

from celery import shared_task
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.inventory.models import site_queue
from ops_portal.jobs.choices import ACTIVE_STATES
from ops_portal.jobs.launch import DEFAULT_QUEUE, launch_adhoc
from ops_portal.jobs.models import Job
from ops_portal.jobs.system import site_selectors

from . import metrics, site_workers
from .choices import COLLECT_ACTION, SAMPLING_ACTIONS
from .evaluation import evaluate as evaluate_rules

log = logging.getLogger(__name__)


@shared_task(name="monitoring.evaluate", ignore_result=True)
def evaluate(environment_id=None, source=Source.SCHEDULE):
    """Evaluate alert rules (of one environment, after its metrics job; or all, on schedule)."""
    return evaluate_rules(Actor.system(source), environment_id=environment_id)


def queue_evaluation(environment_id):
    """Ask a worker to evaluate the environment's rules now (a sampling job stored its samples);
    when the broker refuses, the 30-second schedule evaluates anyway."""
    try:
        evaluate.delay(environment_id, Source.WORKER)
    except Exception:
        log.warning("could not queue alert evaluation for environment %s", environment_id, exc_info=True)


class EvaluateAfter:
    """A job resource (runner.resources), closed with the others once every target is done: asks
    for the environment's alert rules to be evaluated after the samples the job's targets handed
    to its writer are stored (the writer runs calls in order)."""

    def __init__(self, runner):
        self.writer, self.environment_id = runner.writer, runner.job.environment_id

    def close(self):
        environment_id = self.environment_id
        self.writer.call(lambda: queue_evaluation(environment_id))


@shared_task(name="monitoring.rollup", ignore_result=True)
def rollup(raw_hours=None, five_minute_days=None, hourly_days=None):
    """Roll raw samples up into 5-minute and hourly buckets, then drop what is past retention."""
    done = metrics.rollup()
    removed = metrics.retention(raw_hours=raw_hours, five_minute_days=five_minute_days, hourly_days=hourly_days)
    return {"done_until": done, "removed": removed}


@shared_task(name="monitoring.collect_metrics", ignore_result=True)
def collect_metrics(parallel=50, timeout_seconds=300):
    """Launch one metrics job per environment and site with enabled hosts (a job runs on one
    site's workers), unless its previous one is still queued or running (collection never piles
    up behind a slow fleet)."""
    actor = Actor.system(Source.SCHEDULE)
    busy = set(Job.objects.system().filter(action=COLLECT_ACTION, state__in=ACTIVE_STATES)
               .values_list("environment_id", "queue"))
    launched = []
    for environment, site, selector in site_selectors():
        if (environment.pk, DEFAULT_QUEUE if site is None else site_queue(site)) in busy:
            continue
        try:
            job = launch_adhoc(
                actor, environment=environment, action=COLLECT_ACTION, values={}, selector=selector,
                strategy={"kind": "parallel", "limit": parallel},
                name=f"Collect metrics ({environment.name}{', ' + site if site else ''})",
                timeout_seconds=timeout_seconds, target_timeout_seconds=120, predefined=True)
        except (ValidationError, PermissionDenied) as exc:  # hosts went away or moved meanwhile
            log.info("no metrics job in %s (site %s): %s", environment, site, exc)
            continue
        launched.append(job.pk)
    return launched


@shared_task(name="monitoring.site_workers", ignore_result=True)
def check_site_workers():
    """Alert on sites whose jobs wait with no worker; resolve when one takes the site's queue."""
    return site_workers.check()


@shared_task(name="monitoring.prune_jobs", ignore_result=True)
def prune_metrics_jobs(days=3):
    """Remove system sampling jobs (host metrics, running containers; with their targets and
    output) that ended more than `days` ago; the samples they stored and their audit rows stay."""
    cutoff = timezone.now() - timedelta(days=days)
    old = Job.objects.system().filter(action__in=SAMPLING_ACTIONS, finished__lt=cutoff)
    removed = 0
    while True:
        ids = list(old.values_list("pk", flat=True)[:1000])
        if not ids:
            return removed
        Job.objects.filter(pk__in=ids).delete()
        removed += len(ids)
