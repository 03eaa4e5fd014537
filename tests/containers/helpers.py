"""Helpers of the container level's tests: engines and people, made directly."""
from ops_portal.accounts.choices import Role
from ops_portal.containers.models import Container, Engine, Service
from ops_portal.core.context import Actor
from tests import factories

LOCAL_URL = "unix:///var/run/docker.sock"


def engine(environment, name="local", url=LOCAL_URL, **fields):
    return Engine.objects.create(environment=environment, name=name, url=url, **fields)


def person(environment, role, name=None):
    user = factories.user(name)
    factories.binding(role=role, user=user, environment=environment)
    return user


def act(user, source="api"):
    return Actor.for_user(user, source=source)


def operator(environment):
    return act(person(environment, Role.OPERATOR))


def admin(environment):
    return act(person(environment, Role.ADMIN))


def container(engine, name, docker_id=None, **fields):
    docker_id = docker_id or (name.encode().hex() * 8)[:64]
    return Container.objects.create(engine=engine, docker_id=docker_id, name=name,
                                    **{"state": "running", "image": "web:v1", **fields})


def service(engine, name, service_id=None, **fields):
    service_id = service_id or (name.encode().hex() * 4)[:25]
    return Service.objects.create(engine=engine, service_id=service_id, name=name,
                                  **{"image": "web:v1", "mode": "replicated", "replicas_desired": 1, **fields})


def synced(engine_id, after=None):
    """Has the engine been fully synced (after `after`)?"""
    row = Engine.objects.filter(pk=engine_id).values_list("last_sync", flat=True).first()
    return row is not None and (after is None or row > after)


def synced_engine(environment, client):
    """The local engine as a row in `environment`, checked and fully synced from `client` (the
    fixture `engine`'s Docker client); the Swarm manager the service tests need."""
    from ops_portal.containers import engines, sync
    from schedulers import container as backend

    row = engine(environment)
    engines.check(row)
    sync.resync(row.pk, backend.snapshot(client))
    row.refresh_from_db()
    assert row.is_manager, row.error
    return row


def running_tasks(docker_client, service_id):
    """The service's tasks that run now (desired and actual state)."""
    tasks = docker_client.api.tasks(filters={"service": service_id, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]
