"""Fleet hosts registered in the portal's inventory, for jobs against real sshd hosts."""

import pytest

from ops_portal.accounts.choices import Role
from tests import factories
from tests.helpers import act, fleet_credential, fleet_host, person


@pytest.fixture
def fleet_env(fleet, db):
    """An environment holding every fleet host, pinned to its real host key, and an admin actor."""
    env = factories.environment("fleet")
    actor = act(person(env, Role.ADMIN))
    credential = fleet_credential(actor, env, fleet)
    hosts = [fleet_host(actor, env, credential, h, tags=["fleet"]) for h in fleet.hosts]
    return env, actor, hosts
