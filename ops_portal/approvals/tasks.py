from celery import shared_task

from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import services


@shared_task(name="approvals.expire_due", ignore_result=True)
def expire_due():
    """Beat: end requests past their time with their policy's outcome; each is audited."""
    return services.expire_due(Actor.system(Source.SCHEDULE))
