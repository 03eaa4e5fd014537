"""Programs' services apart from the API: the periodic refresh, and configuration actions refused to
operators on every path (a template an administrator made, a relaunch)."""
import json

import pytest
from django.core.exceptions import PermissionDenied

from ops_portal.accounts.choices import Role
from ops_portal.jobs.launch import launch, relaunch
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template
from ops_portal.programs import tasks
from ops_portal.programs.job_actions import REFRESH_ACTION
from tests import factories
from tests.programs.helpers import act, person, program

pytestmark = pytest.mark.django_db


def test_the_periodic_refresh_launches_one_job_per_environment_and_does_not_pile_up(db):
    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    factories.environment("empty")
    factories.host(alpha, "a-1")
    factories.host(alpha, "a-2")
    factories.host(beta, "b-1")
    first = tasks.refresh()
    assert len(first) == 2
    jobs = Job.objects.filter(pk__in=first)
    assert {j.action for j in jobs} == {REFRESH_ACTION} and all(j.is_system for j in jobs)
    assert sorted(j.targets_total for j in jobs) == [1, 2]
    assert tasks.refresh() == []  # the previous ones have not ended


def test_an_operator_cannot_run_a_configuration_action_through_a_template_or_a_relaunch(db):
    env = factories.environment("alpha")
    target = program(factories.host(env, "web-1"), "web", managed=True, spec={"command": ["/bin/true"]})
    admin, operator = act(person(env, Role.ADMIN)), act(person(env, Role.OPERATOR))
    template = create_template(admin, name="apply-web", environment=env, action="program.apply",
                               selector={"kind": "program", "ids": [str(target.pk)]},
                               action_params={"spec": json.dumps({"command": ["/bin/true"]})})
    with pytest.raises(PermissionDenied):
        launch(operator, template)
    job = launch(admin, template)
    Job.objects.filter(pk=job.pk).update(state="failed")
    with pytest.raises(PermissionDenied):
        relaunch(operator, Job.objects.get(pk=job.pk))
    assert Job.objects.count() == 1
