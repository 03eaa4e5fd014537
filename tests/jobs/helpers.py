import time

from ops_portal.accounts.choices import Role
from ops_portal.core.context import Actor
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from tests import factories


def local_hosts(environment, count, prefix="h"):
    return [factories.host(environment, f"{prefix}-{i}", transport=Transport.LOCAL) for i in range(1, count + 1)]


def operator(environment):
    user = factories.user()
    factories.binding(role=Role.OPERATOR, user=user, environment=environment)
    return Actor.for_user(user, source="api")


def launch(actor, environment, command, selector=None, **kwargs):
    return launch_adhoc(actor, environment=environment, action="host.command",
                                 values={"command": command}, selector=selector or {"all": True}, **kwargs)


def wait_job(job, states, timeout=60):
    deadline = time.monotonic() + timeout
    states = {states} if isinstance(states, str) else set(states)
    while time.monotonic() < deadline:
        current = Job.objects.get(pk=job.pk)
        if current.state in states:
            return current
        time.sleep(0.1)
    current = Job.objects.get(pk=job.pk)
    raise AssertionError(f"job {job.pk} is {current.state} ({current.waiting_reason!r}, {current.error!r}), "
                         f"not {states} after {timeout}s")


def wait_until(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
