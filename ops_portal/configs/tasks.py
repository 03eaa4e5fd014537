"""Celery tasks of configuration management."""
from celery import shared_task

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from .services import launch_drift_checks


@shared_task(name="configs.check_drift", ignore_result=True)
def check_drift():
    """Launch the periodic drift checks (one config.drift job per environment with templates)."""
    return [job.pk for job in launch_drift_checks(Actor.system(Source.SCHEDULE))]
