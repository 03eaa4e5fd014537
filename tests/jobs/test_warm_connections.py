"""Warm SSH connections across jobs, against real sshd hosts and a real worker, proven from the host
side: sshd's own log ("Accepted publickey") counts handshakes and the container's TCP table counts
open connections. A second job makes no handshake; a rotated credential closes the old
connections at once and the next job logs in with the new key; a changed pinned key is refused,
never served a connection made under the old one."""
import pytest

from ops_portal.inventory import services as inventory
from ops_portal.inventory import warm
from ops_portal.inventory.models import Host
from ops_portal.jobs.choices import JobState, TargetState
from schedulers.sshkeys import describe
from tests import factories
from tests.helpers import wait_until
from tests.jobs.helpers import wait_job
from tests.jobs.test_host_jobs import launch
from tests.keys import new_private_key
from tests.live import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]

ESTABLISHED_TO_SSHD = ("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | "
                       "awk '$2 ~ /:0016$/ && $4 == \"01\"' | wc -l")


def accepted(docker_client, host):
    """Public-key logins sshd logged on the host so far, with the key fingerprint of each."""
    logs = docker_client.containers.get(host.container_id).logs(stdout=True, stderr=True).decode(errors="replace")
    return [line.rsplit(" ", 1)[-1] for line in logs.splitlines() if "Accepted publickey for" in line]


def established(fleet, host):
    return int(fleet.exec(host.name, ESTABLISHED_TO_SSHD).check().stdout.strip())


@pytest.fixture
def warm_site(fleet, fleet_env, live_env, live_logs):
    """The fleet hosts on a site served by one single-process worker (warm connections are per
    process), with no connection to them left warm by the session's earlier tests (their workers
    and this process keep theirs: the counts below start from none)."""
    env, actor, hosts = fleet_env
    site = factories.site("warm")
    hosts = [inventory.update_host(actor, host, site=site) for host in hosts]
    for host in hosts:
        warm.publish(address=host.address, port=host.port)
    wait_until(lambda: [established(fleet, fleet.host(h.name)) for h in hosts] == [0] * len(hosts), timeout=15,
               what="the connections earlier tests kept warm to close")
    worker = start_worker(live_env, live_logs, name="warm", concurrency=1, queues="site.warm")
    yield env, actor, hosts, worker
    worker.stop()


def run(actor, env, hosts, expect=JobState.SUCCEEDED, command="uname -a"):
    job = launch(actor, env, "host.command", {"command": command}, selector={"names": [h.name for h in hosts]},
                 strategy={"kind": "parallel", "limit": 10})
    return wait_job(job, expect, timeout=120)


def test_a_second_job_reuses_the_connections_and_a_rotation_closes_them(fleet, docker_client, warm_site):
    env, actor, hosts, worker = warm_site
    fleet_hosts = [fleet.host(h.name) for h in hosts]
    before = [len(accepted(docker_client, h)) for h in fleet_hosts]
    first = run(actor, env, hosts)
    assert first.queue == "site.warm" and first.worker == worker.hostname
    after_first = [len(accepted(docker_client, h)) for h in fleet_hosts]
    assert after_first == [n + 1 for n in before]  # one handshake per host
    assert [established(fleet, h) for h in fleet_hosts] == [1] * len(hosts)  # kept warm by the worker

    assert not any((data or {}).get("reused_connection") for data in first.targets.values_list("data", flat=True))
    second = run(actor, env, hosts)
    assert set(second.targets.values_list("state", flat=True)) == {TargetState.OK}
    assert all(data["reused_connection"] for data in second.targets.values_list("data", flat=True))
    assert [len(accepted(docker_client, h)) for h in fleet_hosts] == after_first  # no new handshake
    assert [established(fleet, h) for h in fleet_hosts] == [1] * len(hosts)

    # Rotation: the hosts accept the new key too (sshd would not end sessions for a removed key anyway).
    new_key = new_private_key()
    public, fingerprint = describe(new_key)
    for host in fleet_hosts:
        fleet.exec(host.name, f"cp /root/.ssh/authorized_keys /root/.ssh/authorized_keys.bak && "
                              f"echo '{public}' >> /root/.ssh/authorized_keys").check()
    try:
        credential = Host.objects.get(pk=hosts[0].pk).credential
        inventory.rotate_credential(actor, credential, private_key=new_key)
        # Closed at once by the worker (announced on commit), seen from the hosts.
        wait_until(lambda: [established(fleet, h) for h in fleet_hosts] == [0] * len(hosts), timeout=10,
                   what="the old key's connections to close")
        run(actor, env, hosts)
        logins = [accepted(docker_client, h) for h in fleet_hosts]
        assert [len(seen) for seen in logins] == [n + 1 for n in after_first]
        assert {seen[-1] for seen in logins} == {fingerprint}  # the new key logged in
    finally:
        for host in fleet_hosts:
            fleet.exec(host.name, "mv /root/.ssh/authorized_keys.bak /root/.ssh/authorized_keys").check()


def test_a_changed_pinned_key_is_refused_not_served_a_warm_connection(fleet, docker_client, warm_site):
    env, actor, hosts, worker = warm_site
    first, second = hosts[0], hosts[1]
    run(actor, env, [first, second])
    assert established(fleet, fleet.host(first.name)) == 1
    # Behind the services' back (no announcement): only the key check stands between the job and
    # the warm connection made under the old pin.
    Host.objects.filter(pk=first.pk).update(host_key=second.host_key)
    job = run(actor, env, [first], expect=JobState.FAILED)
    target = job.targets.get()
    assert target.state == TargetState.FAILED and f"host key for {first.name} changed" in target.error
    assert Host.objects.get(pk=first.pk).reachability == "host_key_changed"
    # Through the service: the worker closes the host's warm connections at once.
    assert established(fleet, fleet.host(second.name)) == 1
    inventory.update_host(actor, Host.objects.get(pk=second.pk), host_key=first.host_key)
    wait_until(lambda: established(fleet, fleet.host(second.name)) == 0, timeout=10,
               what="the re-pinned host's connection to close")
    logins = len(accepted(docker_client, fleet.host(second.name)))
    job = run(actor, env, [second], expect=JobState.FAILED)
    assert f"host key for {second.name} changed" in job.targets.get().error
    assert len(accepted(docker_client, fleet.host(second.name))) == logins  # refused before any login



def test_a_warm_connection_to_a_restarted_host_is_replaced_by_a_new_login(fleet, docker_client, warm_site):
    env, actor, hosts, worker = warm_site
    host = hosts[2]
    run(actor, env, [host])
    assert established(fleet, fleet.host(host.name)) == 1
    fleet.stop_host(host.name)  # a reboot: the kept connection dies with the host's sshd
    restarted = fleet.start_host(host.name)
    logins = len(accepted(docker_client, restarted))  # the new container's log: the fleet's own readiness login
    job = run(actor, env, [host])
    assert job.targets.get().exit_code == 0
    assert len(accepted(docker_client, restarted)) == logins + 1  # a new handshake, the dead one dropped
    assert established(fleet, restarted) == 1
