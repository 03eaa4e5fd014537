"""Celery tasks of the container level: the periodic sampling of running containers. Sampling
itself is a job (action engine.container_stats, job_actions.py), so it shows in the same history,
audit and live views as the host metrics jobs."""
import logging

from celery import shared_task
from django.core.exceptions import PermissionDenied, ValidationError

from ops_portal.accounts.models import Environment
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.inventory.models import site_queue
from ops_portal.jobs.choices import ACTIVE_STATES
from ops_portal.jobs.launch import DEFAULT_QUEUE, launch_adhoc
from ops_portal.jobs.models import Job
from ops_portal.monitoring.choices import CONTAINER_STATS_ACTION

from .choices import ContainerState
from .models import Container, Engine
from .targets import engine_sites

log = logging.getLogger(__name__)


def engines_to_sample():
    """{(environment id, site name or None): [engine ids]} of the enabled engines running containers."""
    ids = set(Container.objects.filter(state=ContainerState.RUNNING, engine__enabled=True)
              .values_list("engine_id", flat=True).distinct())
    environments = dict(Engine.objects.filter(pk__in=ids).values_list("pk", "environment_id"))
    groups = {}
    for engine_id, site in engine_sites(Engine, "", ids).items():
        groups.setdefault((environments[engine_id], site), []).append(engine_id)
    return groups


@shared_task(name="containers.collect_stats", ignore_result=True)
def collect_stats(parallel=100, max_containers=500, timeout_seconds=300):
    """Launch one sampling job per environment and site with running containers (a job runs on
    one site's workers), unless its previous one is still queued or running."""
    actor = Actor.system(Source.SCHEDULE)
    busy = set(Job.objects.system().filter(action=CONTAINER_STATS_ACTION, state__in=ACTIVE_STATES)
               .values_list("environment_id", "queue"))
    groups = engines_to_sample()
    environments = Environment.objects.in_bulk({environment_id for environment_id, _ in groups})
    launched = []
    for (environment_id, site), engine_ids in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        if (environment_id, DEFAULT_QUEUE if site is None else site_queue(site)) in busy:
            continue
        environment = environments[environment_id]
        try:
            job = launch_adhoc(
                actor, environment=environment, action=CONTAINER_STATS_ACTION,
                values={"parallel": parallel, "max_containers": max_containers},
                selector={"kind": "engine", "ids": [str(pk) for pk in sorted(engine_ids)]},
                strategy={"kind": "parallel", "limit": 4},  # engines at a time, each `parallel` threads
                name=f"Sample containers ({environment.name}{', ' + site if site else ''})",
                timeout_seconds=timeout_seconds, target_timeout_seconds=240, predefined=True)
        except (ValidationError, PermissionDenied) as exc:  # engines went away or were disabled meanwhile
            log.info("no container sampling job in %s (site %s): %s", environment, site, exc)
            continue
        launched.append(job.pk)
    return launched
