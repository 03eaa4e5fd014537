"""Celery tasks of monitoring: evaluate alert rules, roll up and prune metrics.

Collection itself is a job (action host.metrics); the task that launches it lives with the action
in ops_portal.jobs.actions.monitoring, since monitoring sits below jobs.
"""
from celery import shared_task

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor


@shared_task(name="monitoring.evaluate", ignore_result=True)
def evaluate(environment_id=None, source=Source.SCHEDULE):
    """Evaluate alert rules (of one environment, after its metrics job; or all, on schedule)."""
    from .evaluation import evaluate as run

    return run(Actor.system(source), environment_id=environment_id)


@shared_task(name="monitoring.rollup", ignore_result=True)
def rollup(raw_hours=None, five_minute_days=None, hourly_days=None):
    """Roll raw samples up into 5-minute and hourly buckets, then drop what is past retention."""
    from . import metrics

    done = metrics.rollup()
    removed = metrics.retention(raw_hours=raw_hours, five_minute_days=five_minute_days, hourly_days=hourly_days)
    return {"done_until": done, "removed": removed}
