"""Celery tasks of the programs app."""
from celery import shared_task

from .services import refresh_everywhere


@shared_task(name="programs.refresh", ignore_result=True)
def refresh(parallel=20):
    """Launch the periodic refresh (one programs.refresh job per environment with enabled hosts)."""
    return refresh_everywhere(limit=parallel)
