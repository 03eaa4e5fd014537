"""The processes pages: fleet-wide, one host (tree and search, changes since the scan before), one
process (its actions as jobs), the host page's section; each in a fixed number of queries."""
import html

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.models import Job
from ops_portal.processes import store
from schedulers.process import inventory
from tests import factories
from tests.processes.helpers import proc, snapshot
from tests.programs.helpers import program

pytestmark = pytest.mark.django_db


@pytest.fixture
def env():
    return factories.environment("alpha")


@pytest.fixture
def host(env):
    host = factories.host(env, "web-1")
    first = snapshot([proc(1, "init", ppid=0), proc(40, "sshd", ports=[("0.0.0.0", 22)]),
                      proc(41, "old-worker", ppid=40)], at=1_800_000_000)
    store.store_scan(host.pk, first)
    second = snapshot([proc(1, "init", ppid=0), proc(40, "sshd", ports=[("0.0.0.0", 22)]),
                       proc(42, "nginx", ppid=1, cpu=55.0, rss=700_000_000, owner=("systemd", "nginx.service"),
                            main=True),
                       proc(43, "nginx-worker", ppid=42, state="T", owner=("systemd", "nginx.service"))],
                      at=1_800_000_060)
    store.store_scan(host.pk, second, inventory.diff(first, second))
    return host


def person(role, env):
    user = factories.user()
    factories.binding(role=role, user=user, environment=env)
    return user


def test_the_fleet_page_shows_top_processes_hosts_and_a_searchable_list(client, env, host):
    client.force_login(person(Role.VIEWER, env))
    page = client.get("/processes/").content.decode()
    assert 'id="top-cpu"' in page and "nginx" in page and "667.6 MB" in page.replace("\xa0", " ")
    assert "2 new, 1 gone, 0 restarted" in page
    assert "Scan now" not in page  # a viewer launches nothing
    found = client.get("/processes/", {"q": "worker"}).content.decode()
    assert "nginx-worker" in found and "old-worker" not in found
    assert 'href="/processes/"' in client.get("/").content.decode()  # in the navigation
    bad = client.get("/processes/", {"port": "22; id"})
    assert bad.status_code == 200 and "Enter a number" in bad.content.decode()


def test_the_host_page_shows_the_tree_and_what_changed(client, env, host):
    client.force_login(person(Role.OPERATOR, env))
    page = client.get(f"/processes/hosts/{host.pk}/").content.decode()
    assert 'id="process-tree"' in page and 'id="scan-host"' in page
    assert page.index("/usr/bin/init") < page.index("/usr/bin/sshd") < page.index("/usr/bin/nginx-worker")
    assert "2 new" in page and "42 nginx" in page and "41 old-worker" in page
    search = client.get(f"/processes/hosts/{host.pk}/", {"owner_kind": "systemd"}).content.decode()
    assert "nginx-worker" in search and "/usr/bin/sshd" not in search


def test_an_operator_acts_on_a_process_from_its_page_and_a_viewer_cannot(client, env, host):
    nginx = host.processes.get(pid=42)
    client.force_login(person(Role.VIEWER, env))
    page = html.unescape(client.get(f"/processes/{nginx.pk}/").content.decode())
    assert 'id="process-act"' not in page
    assert "Signals go to the process itself: it belongs to systemd unit nginx.service, which the portal does not " \
           "know as a program (refresh the host's programs)." in page
    refused = client.post(f"/processes/{nginx.pk}/act/", {"what": "kill"}, follow=True)
    assert "You may not operate" in refused.content.decode() and not Job.objects.exists()
    client.force_login(person(Role.OPERATOR, env))
    assert 'id="process-act"' in client.get(f"/processes/{nginx.pk}/").content.decode()
    response = client.post(f"/processes/{nginx.pk}/act/", {"what": "signal", "signal": "HUP", "use_manager": "on"})
    job = Job.objects.get()
    assert response.url == f"/jobs/{job.pk}/" and job.action == "process.signal" and job.params["signal"] == "HUP"
    bad = client.post(f"/processes/{nginx.pk}/act/", {"what": "stop", "grace_seconds": "5; reboot"}, follow=True)
    assert "must be a whole number" in bad.content.decode() and Job.objects.count() == 1


def test_a_process_of_a_program_the_portal_knows_links_to_it_and_offers_its_manager(client, env, host):
    nginx = program(host, "nginx", "systemd")
    client.force_login(person(Role.VIEWER, env))
    page = client.get(f"/processes/{host.processes.get(pid=42).pk}/").content.decode()
    assert f'<a href="/programs/{nginx.pk}/">the program</a>' in page
    assert "stop, pause, resume and signals go through systemd" in page and "does not know" not in page
    worker = html.unescape(client.get(f"/processes/{host.processes.get(pid=43).pk}/").content.decode())
    assert "Signals go to the process itself: it is a child of systemd unit nginx.service's own process" in worker


def test_processes_of_the_portals_own_machine_offer_no_actions_to_environment_operators(client, env, settings):
    settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN = True
    portal = factories.host(env, "portal", transport=Transport.LOCAL)
    store.store_scan(portal.pk, snapshot([proc(90, "celery")]))
    client.force_login(person(Role.OPERATOR, env))
    page = client.get(f"/processes/{portal.processes.get().pk}/").content.decode()
    assert 'id="process-act"' not in page and "Only administrators of all environments" in page


def test_the_host_page_has_a_processes_section(client, env, host):
    client.force_login(person(Role.OPERATOR, env))
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    assert 'id="host-processes"' in page and "4 processes at" in page and "Scan processes" in page


def test_scan_buttons_launch_jobs(client, env, host):
    client.force_login(person(Role.OPERATOR, env))
    response = client.post("/processes/scan/", {"host": host.pk})
    job = Job.objects.get()
    assert response.url == f"/jobs/{job.pk}/" and job.action == "processes.scan"
    client.post("/processes/scan/", {"environment": env.pk})
    assert Job.objects.count() == 2


@pytest.mark.parametrize("url", ["/processes/", "/processes/?q=serve", "/processes/hosts/{host}/",
                                 "/processes/hosts/{host}/?q=serve", "/processes/{process}/"])
def test_pages_cost_the_same_queries_for_a_few_or_thousands_of_processes(client, env, host, url,
                                                                        django_assert_max_num_queries):
    client.force_login(person(Role.OPERATOR, env))
    address = url.format(host=host.pk, process=host.processes.get(pid=40).pk)
    with django_assert_max_num_queries(40) as few:
        assert client.get(address).status_code == 200
    many = [proc(1, "init", ppid=0), proc(40, "sshd")] + [proc(pid, f"p{pid}", ppid=40) for pid in range(100, 2100)]
    store.store_scan(host.pk, snapshot(many, at=1_900_000_000))
    for _ in range(3):
        store.store_scan(factories.host(env).pk, snapshot(many, at=1_900_000_000))
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(address).status_code == 200
