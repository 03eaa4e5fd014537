"""Helpers of the self-healing tests: policies made directly, container changes as the sync reports them."""
from ops_portal.containers.signals import ContainerChange
from ops_portal.healing.models import HealingPolicy


def policy(environment, name="heal", **fields):
    return HealingPolicy.objects.create(environment=environment, name=name, **fields)


def exited(container, before_state="running"):
    """The change the watcher reports when a running container dies."""
    return ContainerChange(container.pk, container.docker_id, container.name,
                           {"state": before_state, "health": "", "exit_code": None, "restart_count": 0},
                           {"state": container.state, "health": container.health, "exit_code": container.exit_code,
                            "restart_count": container.restart_count}, container.service_id, "die")
