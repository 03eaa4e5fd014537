from celery import shared_task

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import services


@shared_task(name="projects.prune_revisions", ignore_result=True)
def prune_revisions():
    """Beat, hourly: remove working copies of old project revisions on this machine (audited)."""
    return services.prune_revisions(Actor.system(Source.SCHEDULE))
