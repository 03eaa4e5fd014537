"""The portal's own machine is a host like the others: a refresh through the live worker runs the
managers' checks as subprocesses and says which managers it has (here: none, each with its reason)."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import JobEvent
from ops_portal.programs import services
from ops_portal.programs.models import HostManager
from tests import factories
from tests.jobs.helpers import wait_job
from tests.programs.helpers import act, person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_refresh_of_the_portals_own_machine_says_which_managers_it_has(live_worker):
    env = factories.environment("alpha")
    host = factories.host(env, "portal", transport=Transport.LOCAL)
    job = wait_job(services.launch_refresh(act(person(env, Role.OPERATOR)), env, [host]), JobState.SUCCEEDED,
                   timeout=120)
    managers = {m.manager: m for m in HostManager.objects.filter(host=host)}
    assert set(managers) == {"supervisord", "systemd", "pm2"}
    for manager in managers.values():
        assert manager.checked and manager.reason, manager.manager
        if not manager.available:
            assert manager.why_not["start"].endswith(manager.reason)
    lines = list(JobEvent.objects.filter(job=job).values_list("text", flat=True))
    assert any(line.startswith("supervisord") for line in lines)
