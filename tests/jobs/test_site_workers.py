"""Workers by site, with real Celery workers: each site's jobs run only on the workers that take its
queue, and a site without a worker makes its jobs wait (with the reason and an alert) until one
comes."""
import time

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory import services as inventory
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import live
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.models import Job
from ops_portal.monitoring import site_workers
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.helpers import act, person
from tests.jobs.helpers import launch, wait_job
from tests.live import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def _site_hosts(env, site, count=2):
    site = factories.site(site)
    return [factories.host(env, f"{site.name}-{i}", transport=Transport.LOCAL, site=site) for i in range(count)]


@pytest.mark.fleet
def test_two_workers_on_two_site_queues_each_take_only_their_sites_work(fleet_env, live_env, live_logs):
    env, actor, hosts = fleet_env
    placed = {"a": hosts[0], "b": hosts[1]}
    for name, host in placed.items():
        inventory.update_host(act(person(None, Role.ADMIN)), host, site=factories.site(name))
    near_a = start_worker(live_env, live_logs, name="site-a", concurrency=1, queues="site.a")
    near_b = start_worker(live_env, live_logs, name="site-b", concurrency=1, queues="site.b")
    try:
        jobs = {site: [launch(actor, env, "uname -n", selector={"names": [host.name]}) for _ in range(2)]
                for site, host in sorted(placed.items(), reverse=True)}
        for site, hostname in (("a", near_a.hostname), ("b", near_b.hostname)):
            for job in jobs[site]:
                done = wait_job(job, JobState.SUCCEEDED, timeout=90)
                assert done.queue == f"site.{site}"
                assert done.worker == hostname, f"job {job.pk} of site {site} ran on {done.worker}"
                target = done.targets.get()
                assert target.name == placed[site].name and target.exit_code == 0  # over SSH to the fleet host
    finally:
        near_a.stop()
        near_b.stop()


def test_a_site_without_workers_makes_jobs_wait_and_alerts_until_a_worker_takes_its_queue(env, live_env,
                                                                                           live_logs):
    _site_hosts(env, "c", count=1)
    actor = act(person(None, Role.ADMIN))
    other = start_worker(live_env, live_logs, name="not-c", concurrency=1, queues="default,site.a")
    near_c = None
    try:
        job = launch(actor, env, "echo waited", selector={"pattern": "c-*"})
        assert job.queue == "site.c"
        assert site_workers.check() == [f"site:c:environment:{env.pk}"]
        alert = Alert.objects.get(source="site_workers")
        assert alert.state == "firing" and "No worker for site c" in alert.summary
        time.sleep(3)  # time for the worker of the other queues to take it, if routing were wrong
        waiting = Job.objects.get(pk=job.pk)
        assert waiting.state == JobState.QUEUED and waiting.worker == ""
        assert live.why_waiting(waiting).startswith("No worker for site c")
        near_c = start_worker(live_env, live_logs, name="site-c", concurrency=1, queues="site.c")
        done = wait_job(job, JobState.SUCCEEDED, timeout=90)
        assert done.worker == near_c.hostname
        assert site_workers.check() == []
        assert Alert.objects.get(pk=alert.pk).state == "resolved"
    finally:
        other.stop()
        if near_c is not None:
            near_c.stop()
