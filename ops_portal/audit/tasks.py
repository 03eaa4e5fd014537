from celery import shared_task

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import services


@shared_task(name="audit.prune", ignore_result=True)
def prune(days=365):
    """Retention: remove audit rows older than `days`; the removal is audited."""
    return services.prune(Actor.system(Source.SCHEDULE), older_than_days=days)
