"""The container level's state rule kinds (monitoring.states): containers not running and Swarm
services short of tasks, read from the rows the watcher keeps current; and the subjects of container
and Swarm service metric rules (monitoring.subjects): containers and services, and where their
series are."""
from django.db.models import F, Q

from ops_portal.monitoring import states, subjects
from ops_portal.monitoring.choices import RuleKind, SubjectKind

from .choices import ContainerState, Health, ServiceMode
from .models import Container, Service, metric_key, series_host, service_metric_key, service_series

# Swarm jobs run to completion: fewer running tasks than desired is what a finished job looks like.
JOB_MODES = (ServiceMode.REPLICATED_JOB, ServiceMode.GLOBAL_JOB)


def _containers(rule):
    # A Swarm task's container is the service's business (its rule counts the tasks); the old
    # tasks' exited containers stay listed as history.
    return Container.objects.filter(engine__environment_id=rule.environment_id, engine__enabled=True, task_id="")


def _container_detail(state, health, exit_code):
    if state == ContainerState.RUNNING:
        return "running but unhealthy"
    if state in (ContainerState.EXITED, ContainerState.DEAD) and exit_code is not None:
        return f"{state} (exit code {exit_code})"
    return state or "in no known state"


def failing_containers(rule):
    """Containers of the rule's environment that are not running, or running but unhealthy."""
    rows = (_containers(rule).filter(~Q(state=ContainerState.RUNNING) | Q(health=Health.UNHEALTHY))
            .values_list("pk", "name", "state", "health", "exit_code", "finished_at", "created_at", "started_at",
                         "host_id", "engine__name"))
    for pk, name, state, health, exit_code, finished_at, created_at, started_at, host_id, engine_name in rows:
        # Since when, from the engine's own times where the state has one (an exit, a creation
        # never started); unhealthy, paused and restarting count from the evaluation's first sight.
        since = {ContainerState.EXITED: finished_at, ContainerState.DEAD: finished_at,
                 ContainerState.CREATED: created_at}.get(state) if state != ContainerState.RUNNING else None
        if since is not None and started_at is not None and since < started_at:
            since = None  # not the time of this state (the engine reports none newer)
        yield states.Failing(pk, name, _container_detail(state, health, exit_code), host_id=host_id, since=since,
                             where=f"(container on engine {engine_name})")


def containers_in_scope(rule, ids):
    return dict(_containers(rule).filter(pk__in=ids).values_list("pk", "name"))


def _services(rule):
    return Service.objects.filter(engine__environment_id=rule.environment_id, engine__enabled=True).exclude(
        mode__in=JOB_MODES)


def failing_services(rule):
    """Swarm services running fewer tasks than desired (the engine's service status)."""
    rows = (_services(rule).filter(replicas_desired__isnull=False, replicas_running__lt=F("replicas_desired"))
            .values_list("pk", "name", "replicas_running", "replicas_desired", "engine__host_id", "engine__name"))
    for pk, name, running, desired, host_id, engine_name in rows:
        yield states.Failing(pk, name, f"{running} of {desired} tasks running", host_id=host_id,
                             where=f"(Swarm service on engine {engine_name})")


def services_in_scope(rule, ids):
    return dict(_services(rule).filter(pk__in=ids).values_list("pk", "name"))


states.register(states.StateKind(RuleKind.CONTAINER_NOT_RUNNING, SubjectKind.CONTAINER, failing_containers,
                                 containers_in_scope))
states.register(states.StateKind(RuleKind.SERVICE_SHORT, SubjectKind.SERVICE, failing_services, services_in_scope,
                                 recovered="runs all its tasks again"))


def container_metric_subjects(rule):
    """Every container of the rule's environment on an enabled engine tied to an inventory host (the
    series of its samples are that host's), Swarm tasks' containers included: their figures are
    their own."""
    rows = (Container.objects.filter(engine__environment_id=rule.environment_id, engine__enabled=True)
            .annotate(series_host=series_host()).filter(series_host__isnull=False)
            .values_list("pk", "name", "series_host", "engine_id", "docker_id", "state", "engine__name"))
    for pk, name, host_id, engine_id, docker_id, state, engine_name in rows:
        yield subjects.Subject(pk, name, host_id, metric_key(engine_id, docker_id),
                               running=state == ContainerState.RUNNING, where=f"(container on engine {engine_name})")


subjects.register(subjects.MetricSubjects(RuleKind.CONTAINER_METRIC, SubjectKind.CONTAINER,
                                          container_metric_subjects))


def service_metric_subjects(rule):
    """Every Swarm service of the rule's environment whose manager engine is tied to an inventory
    host (its tasks' averages are that host's series; one row per service id, as the sampling job
    writes them). Fresh figures are expected while a task runs."""
    chosen = {pk for pk, _ in service_series(Service.objects.filter(engine__environment_id=rule.environment_id))
              .values()}
    rows = Service.objects.filter(pk__in=chosen).values_list("pk", "name", "engine__host_id", "replicas_running",
                                                             "engine__name")
    for pk, name, host_id, running, engine_name in rows:
        yield subjects.Subject(pk, name, host_id, service_metric_key(pk), running=bool(running),
                               where=f"(Swarm service on engine {engine_name})")


subjects.register(subjects.MetricSubjects(RuleKind.SERVICE_METRIC, SubjectKind.SERVICE, service_metric_subjects))
