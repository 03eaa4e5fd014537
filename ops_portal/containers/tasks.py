"""Celery tasks of the container level: the periodic sampling of running containers. Sampling
itself is a job (action engine.container_stats, job_actions.py), so it shows in the same history,
audit and live views as the host metrics jobs."""
from celery import shared_task

from ops_portal.accounts.models import Environment
from ops_portal.jobs.system import launch_everywhere
from ops_portal.monitoring.choices import CONTAINER_STATS_ACTION

from .choices import ContainerState
from .models import Container, Engine
from .targets import engine_sites


def engines_to_sample():
    """[(environment, site name or None, engine selector)] of the enabled engines running
    containers, one entry per environment and site (a job runs on one site's workers)."""
    ids = set(Container.objects.filter(state=ContainerState.RUNNING, engine__enabled=True)
              .values_list("engine_id", flat=True).distinct())
    environments = dict(Engine.objects.filter(pk__in=ids).values_list("pk", "environment_id"))
    groups = {}
    for engine_id, site in engine_sites(Engine, "", ids).items():
        groups.setdefault((environments[engine_id], site), []).append(engine_id)
    rows = Environment.objects.in_bulk({environment_id for environment_id, _ in groups})
    return [(rows[environment_id], site, {"kind": "engine", "ids": [str(pk) for pk in sorted(engine_ids)]})
            for (environment_id, site), engine_ids in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] or ""))]


@shared_task(name="containers.collect_stats", ignore_result=True)
def collect_stats(parallel=100, max_containers=500, timeout_seconds=300):
    """Launch one sampling job per environment and site with running containers, unless its
    previous one is still queued or running; 4 engines at a time, each `parallel` threads."""
    return launch_everywhere(CONTAINER_STATS_ACTION, name="Sample containers", placed=engines_to_sample(),
                             values={"parallel": parallel, "max_containers": max_containers}, limit=4,
                             timeout_seconds=timeout_seconds, target_timeout_seconds=240)
