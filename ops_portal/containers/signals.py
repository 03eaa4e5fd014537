"""Signals of the container level, for the apps that react to what runs (self-healing, autoscaling).

container_changed(sender=Engine, engine=Engine, changes=[ContainerChange]) is sent by
sync.on_container_change after the database holds the new state (on commit), from the watcher
process, whenever a sync or an engine event changed a container's state, health, exit code or
restart count, or a container appeared or went away. Receivers run in the watcher: keep them
short (launch a job, queue a task), never block on the engine.
"""
from dataclasses import dataclass

from django.dispatch import Signal

container_changed = Signal()


@dataclass(frozen=True)
class ContainerChange:
    container_id: int | None  # Container.pk; None when the container is gone
    docker_id: str
    name: str
    before: dict  # {"state", "health", "exit_code", "restart_count"} as stored before; {} when new
    after: dict  # the same keys now; {} when the container is gone
    service_id: str = ""  # the Swarm service's id, for a task's container
    action: str = ""  # the engine event behind it ("die", "health_status" …); "sync" for a resync
