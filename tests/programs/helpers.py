from ops_portal.core.context import Actor
from ops_portal.jobs.choices import JobState
from ops_portal.programs import services
from ops_portal.programs.models import Program
from tests import factories
from tests.jobs.helpers import wait_job


def person(environment, role):
    user = factories.user()
    factories.binding(role=role, user=user, environment=environment)
    return user


def act(user, source="api"):
    return Actor.for_user(user, source=source)


def program(host, name="web", manager="supervisord", **fields):
    """One program row, straight into the database (services are tested elsewhere)."""
    return Program.objects.create(host=host, manager=manager, name=name, **fields)


def refresh(pf, *kinds, state=JobState.SUCCEEDED):
    """Run programs.refresh on the fleet's hosts of these kinds (all by default) and wait for it."""
    hosts = [pf.hosts[k] for k in kinds] if kinds else None
    return wait_job(services.launch_refresh(pf.operator, pf.env, hosts), state, timeout=120)


def seen(name="ticker", **fields):
    """An observed program as backend.observed() gives it (running, no restarts), with changes."""
    base = {"name": name, "group": "", "state": "running", "raw_state": "RUNNING", "pids": [100], "restarts": 0,
            "exit_code": None, "started_at": 1_700_000_000, "stopped_at": None, "crash_loop": False,
            "exit_reason": "", "stderr_tail": [], "limits": {}, "details": {}, "exits": [], "managed": False,
            "description": "", "memory_restarts": 0}
    return {**base, **fields}
