"""A job's default name says what it does: the action and a short form of its public parameters."""
import pytest

from ops_portal.jobs import actions
from ops_portal.jobs.actions import ActionSpec, job_name
from tests import factories
from tests.jobs.helpers import launch, local_hosts, operator

SPEC = ActionSpec(name="x.deploy", label="Deploy", target_kind="host", run=lambda ctx: None, parameters=[
    {"name": "release", "type": "string"}, {"name": "token", "type": "secret"}, {"name": "force", "type": "bool"}])


@pytest.mark.django_db
def test_an_ad_hoc_command_is_named_after_its_command():
    env = factories.environment("alpha")
    local_hosts(env, 1)
    job = launch(operator(env), env, "uname -a")
    assert job.name == "Run a command: uname -a"


def test_several_parameters_are_named_and_secrets_never_shown():
    assert job_name(SPEC, {"release": "v2", "force": True}) == "Deploy: release=v2 force=true"
    assert job_name(SPEC, {}) == "Deploy"  # nothing to say: the label alone


def test_a_long_or_multi_line_command_is_one_line_cut_to_length():
    command = actions.get("host.command")
    name = job_name(command, {"command": "set -e\n" + "echo x; " * 50})
    assert "\n" not in name and len(name) == actions.NAME_LENGTH and name.endswith("…")
    assert name.startswith("Run a command: set -e echo x;")
