"""Jobs on local hosts for the jobs core's tests: hosts, an ad hoc command, waiting for a state."""
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.choices import FINISHED_STATES
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from tests import factories
from tests.helpers import operator, wait_until  # noqa: F401 (operator: for branches written before tests/helpers.py)


def local_hosts(environment, count, prefix="h"):
    return [factories.host(environment, f"{prefix}-{i}", transport=Transport.LOCAL) for i in range(1, count + 1)]


def launch(actor, environment, command, selector=None, **kwargs):
    return launch_adhoc(actor, environment=environment, action="host.command",
                        values={"command": command}, selector=selector or {"all": True}, **kwargs)


def wait_job(job, states, timeout=60):
    """Return the job, read again, once it is in one of `states`; fail after `timeout` seconds, or at
    once when it finished in another state, saying why (the job's and its targets' errors)."""
    states = {states} if isinstance(states, str) else set(states)

    def reached():
        current = Job.objects.get(pk=job.pk)
        if current.state in states:
            return current
        if current.state in FINISHED_STATES:
            raise AssertionError(f"job {job.pk} finished {current.state}, not {states}: {_why(current)}")
        return None

    try:
        return wait_until(reached, timeout, f"job {job.pk} in {states}")
    except AssertionError as exc:
        if str(exc).startswith(f"job {job.pk} finished"):
            raise
        current = Job.objects.get(pk=job.pk)
        raise AssertionError(f"job {job.pk} is {current.state} ({current.waiting_reason!r}), "
                             f"not {states} after {timeout}s: {_why(current)}") from None


def _why(job):
    targets = "; ".join(f"{t.name}: {t.state} {t.error!r}" for t in job.targets.all()[:10])
    return f"error {job.error!r}; targets {targets or 'none'}"
