"""Workers by site as a deployment runs them: each site's worker is a container of the portal's own image
(opsportal/portal, built offline), taking only its site's queue and reaching its fleet hosts over SSH.
Killing one site's worker container mid-job loses only that site's work, reported lost; the other
site's job finishes; a new worker container of the site ends the remote command the dead one left.

The containers share this machine's network namespace (`--network host`): they reach the test
database, Redis and the fleet hosts' published SSH ports on 127.0.0.1, as a worker placed on a
site's own machine reaches its hosts.
"""
import os
import uuid

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.core import heartbeat
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.models import Job
from ops_portal.jobs.tasks import reap_lost_jobs
from tests import factories
from tests.deploy import deployment as d
from tests.helpers import act, fleet_credential, fleet_host, person, wait_until
from tests.jobs.helpers import launch, wait_job

pytestmark = [pytest.mark.deploy, pytest.mark.fleet, pytest.mark.live, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(1800)]

# What a worker container needs of the test run's settings: its database, Redis namespace and keys.
PASSED = ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX", "SECRET_KEY", "ENCRYPTION_KEYS", "DEBUG",
          "HEARTBEAT_INTERVAL", "HEARTBEAT_TTL", "JOB_LOST_AFTER_SECONDS", "BUILTIN_SCHEDULES_ENABLED",
          "LOCAL_TARGETS_NEED_GLOBAL_ADMIN")


class WorkerContainer:
    """A Celery worker of `queue` in a container of the portal's image."""

    def __init__(self, image, live_env, site, generation=1):
        self.hostname = f"site-{site}-{generation}@container-{os.getpid()}"
        self.name = f"opsportal-siteworker-{os.getpid()}-{site}-{generation}"
        env = [arg for key in PASSED if key in live_env for arg in ("-e", f"{key}={live_env[key]}")]
        d.run(["docker", "run", "-d", "--name", self.name, "--network", "host", "--label", "opsportal.test=1", *env,
               image, "celery", "-A", "ops_portal", "worker", "-l", "INFO", "--concurrency", "1",
               "--hostname", self.hostname, "-Q", f"site.{site}", "--without-mingle", "--without-gossip"])
        try:
            wait_until(lambda: heartbeat.is_alive("worker", self.hostname) or self._exited(), timeout=90,
                       what=f"worker container {self.name} to beat")
            assert not self._exited(), f"{self.name} exited:\n{self.logs()}"
        except AssertionError:
            self.remove()
            raise

    def _exited(self):
        return d.run(["docker", "inspect", "-f", "{{.State.Running}}", self.name], check=False).stdout.strip() != "true"

    def logs(self):
        result = d.run(["docker", "logs", "--tail", "30", self.name], check=False)
        return (result.stdout + result.stderr)[-3000:]

    def kill(self):
        d.run(["docker", "kill", "--signal", "KILL", self.name])

    def remove(self):
        d.run(["docker", "rm", "-f", self.name], check=False)


@pytest.fixture
def site_hosts(fleet, db):
    """Two fleet hosts in one environment, host 0 on site a, host 1 on site b."""
    env = factories.environment("sites")
    actor = act(person(env, Role.ADMIN))
    credential = fleet_credential(actor, env, fleet)
    hosts = {}
    for site, fleet_host_ in zip("ab", fleet.hosts[:2], strict=True):
        hosts[site] = fleet_host(actor, env, credential, fleet_host_, site=factories.site(site))
    return env, actor, hosts


def test_site_worker_containers_take_only_their_sites_work_and_a_killed_one_loses_only_its_own(
        images, fleet, site_hosts, live_env):
    d.need("docker")
    env, actor, hosts = site_hosts
    workers = []
    try:
        near_a = WorkerContainer(images["portal"], live_env, "a")
        workers.append(near_a)
        near_b = WorkerContainer(images["portal"], live_env, "b")
        workers.append(near_b)
        # Each site's work runs on the container of its site, over SSH to its fleet host.
        for site, worker in (("a", near_a), ("b", near_b)):
            done = wait_job(launch(actor, env, "uname -n", selector={"names": [hosts[site].name]}),
                            JobState.SUCCEEDED, timeout=90)
            assert (done.queue, done.worker) == (f"site.{site}", worker.hostname)
            assert done.targets.get().exit_code == 0

        # Site b's worker dies mid-command; site a's job, running at the same time, is not touched.
        marker = f"opsportal-site-{uuid.uuid4().hex[:8]}"
        steady = launch(actor, env, "sleep 12; echo steady", selector={"names": [hosts["a"].name]})
        doomed = launch(actor, env, f"echo begun; sleep 300 # {marker}", selector={"names": [hosts["b"].name]})
        wait_until(lambda: (doomed.targets.get().data or {}).get("session"), timeout=60, what="b's remote session")
        wait_until(lambda: fleet.exec(fleet.hosts[1].name, ["pgrep", "-f", marker]).exit_code == 0, timeout=30,
                   what="b's remote command")
        near_b.kill()
        wait_until(lambda: reap_lost_jobs() or Job.objects.get(pk=doomed.pk).state == JobState.LOST, timeout=60,
                   what="the reaper to mark b's job lost")
        lost = Job.objects.get(pk=doomed.pk)
        assert lost.targets.get().state == TargetState.LOST and near_b.hostname in lost.error
        finished = wait_job(steady, JobState.SUCCEEDED, timeout=90)
        assert finished.worker == near_a.hostname

        # The remote command is still there, unattended, until a new worker of site b ends it.
        assert fleet.exec(fleet.hosts[1].name, ["pgrep", "-f", marker]).exit_code == 0
        heir = WorkerContainer(images["portal"], live_env, "b", generation=2)
        workers.append(heir)
        wait_until(lambda: fleet.exec(fleet.hosts[1].name, ["pgrep", "-f", marker]).exit_code == 1, timeout=60,
                   what="site b's new worker to end the dead one's remote command")
        wait_until(lambda: lost.targets.filter(error__contains="was ended").exists(), timeout=30,
                   what="the target to record it")
    finally:
        for worker in workers:
            worker.remove()
        for host in fleet.hosts[:2]:
            fleet.exec(host.name, ["pkill", "-f", "opsportal-site-"])
