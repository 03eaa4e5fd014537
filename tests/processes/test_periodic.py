"""The periodic scan: one system job per environment over every enabled host (the portal's own
machine included), never piling up behind a running one; old system scan jobs are removed."""
from datetime import timedelta

import pytest
from django.utils import timezone

from ops_portal.core import periodic
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.models import Job
from ops_portal.processes.tasks import prune_scan_jobs, scan_all
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_periodic_scan_and_its_retention_are_built_in():
    builtins = periodic.builtins()
    assert builtins["processes: scan"].task == "processes.scan_all"
    assert builtins["retention: process scan jobs"].kwargs == {"days": 3}


def test_the_periodic_scan_launches_one_system_job_per_environment_and_does_not_pile_up(settings):
    settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN = True
    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    factories.environment("empty")
    factories.host(alpha, "portal", transport=Transport.LOCAL)
    factories.host(alpha, "web-1")
    factories.host(beta, "db-1")
    factories.host(beta, "old", enabled=False)
    launched = scan_all()
    jobs = Job.objects.filter(pk__in=launched).order_by("environment__name")
    assert [j.environment.name for j in jobs] == ["alpha", "beta"]
    assert all(j.is_system and j.action == "processes.scan" for j in jobs)
    assert sorted(jobs[0].targets.values_list("name", flat=True)) == ["portal", "web-1"]
    assert list(jobs[1].targets.values_list("name", flat=True)) == ["db-1"]
    assert scan_all() == []  # the previous ones are still queued


def test_old_system_scan_jobs_are_removed_and_peoples_scans_kept():
    env = factories.environment("alpha")
    old = timezone.now() - timedelta(days=5)
    system = Job.objects.create(name="scan", environment=env, action="processes.scan", state="succeeded",
                                finished=old, plan_hash="x")
    person = Job.objects.create(name="scan", environment=env, action="processes.scan", state="succeeded",
                                finished=old, plan_hash="x", created_by_name="alice")
    recent = Job.objects.create(name="scan", environment=env, action="processes.scan", state="succeeded",
                                finished=timezone.now(), plan_hash="x")
    assert prune_scan_jobs(days=3) == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {person.pk, recent.pk}
    assert not Job.objects.filter(pk=system.pk).exists()
