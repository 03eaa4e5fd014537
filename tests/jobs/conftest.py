"""Fleet hosts registered in the portal's inventory, for jobs against real sshd hosts."""
from pathlib import Path

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services as inventory
from tests import factories
from tests.helpers import act, person


@pytest.fixture
def fleet_env(fleet, db):
    """An environment holding every fleet host, pinned to its real host key, and an admin actor."""
    env = factories.environment("fleet")
    actor = act(person(env, Role.ADMIN))
    credential = inventory.create_credential(actor, name="fleet-key", environment=env, username="root",
                                             private_key=Path(fleet.key_path).read_text())
    hosts = [inventory.create_host(actor, name=h.name, address=h.address, port=h.port, username=h.user,
                                   environment=env, credential=credential, host_key=h.host_key, tags=["fleet"])
             for h in fleet.hosts]
    return env, actor, hosts
