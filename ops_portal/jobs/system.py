"""The portal's own periodic work, run as jobs so it shows in the same history, audit and live
views: one job per environment over its enabled hosts."""
import logging

from django.core.exceptions import PermissionDenied, ValidationError

from ops_portal.accounts.models import Environment
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor

from . import services
from .choices import ACTIVE_STATES
from .models import Job

log = logging.getLogger(__name__)


def launch_everywhere(action, *, name, values=None, selector=None, limit=20):
    """Launch `action` in every environment with matching enabled hosts, unless the previous such
    job there is still active (work does not pile up behind a slow or unreachable fleet)."""
    actor = Actor.system(Source.SCHEDULE)
    launched = []
    for environment in Environment.objects.all():
        if Job.objects.filter(environment=environment, action=action, created_by__isnull=True,
                              state__in=ACTIVE_STATES).exists():
            continue
        try:
            job = services.launch_adhoc(actor, environment=environment, action=action, values=values or {},
                                        selector=selector or {"all": True}, strategy={"kind": "parallel",
                                                                                      "limit": limit},
                                        name=f"{name} ({environment.name})", timeout_seconds=1800,
                                        predefined=True)
        except ValidationError as exc:  # no enabled hosts there
            log.debug("no %s in %s: %s", action, environment, exc)
            continue
        except PermissionDenied as exc:  # one environment refusing must not stop the others
            log.warning("%s not launched in %s: %s", action, environment, exc)
            continue
        launched.append(job.pk)
    return launched
