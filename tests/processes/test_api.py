"""/api/processes/ and /api/process-scans/: filters, top, tree, and actions that launch jobs for
operators and administrators of the process's environment, with bad input refused before any job."""
import pytest
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.models import Job
from ops_portal.processes import store
from tests import factories
from tests.processes.helpers import proc, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    web = factories.host(alpha, "web-1")
    db = factories.host(beta, "db-1")
    store.store_scan(web.pk, snapshot([
        proc(1, "init", ppid=0, rss=5_000_000), proc(50, "sshd", ports=[("0.0.0.0", 22)], rss=8_000_000),
        proc(51, "sshd", ppid=50, rss=9_000_000, user="deploy"),
        proc(60, "nginx", cpu=12.5, rss=40_000_000, owner=("systemd", "nginx.service"), main=True,
             ports=[("0.0.0.0", 8080)], cmdline=["nginx", "-g", "daemon off;"]),
        proc(61, "nginx", ppid=60, cpu=30.0, rss=20_000_000, owner=("systemd", "nginx.service"), state="R"),
        proc(70, "stuck", state="T", rss=1_000_000)]))
    store.store_scan(db.pk, snapshot([proc(1, "init", ppid=0), proc(80, "postgres", cpu=90.0, rss=900_000_000)]))
    return alpha, beta, web, db


def person(role, environment):
    user = factories.user()
    factories.binding(role=role, user=user, environment=environment)
    return user


def pids(response):
    assert response.status_code == 200, response.content
    return [row["pid"] for row in response.json()["results"]]


@pytest.mark.parametrize("query, expected", [
    ({"q": "daemon off"}, [60]),
    ({"port": 8080}, [60]),
    ({"port": 22}, [50]),
    ({"owner_kind": "systemd"}, [60, 61]),
    ({"owner_kind": "systemd", "owner_name": "nginx.service"}, [60, 61]),
    ({"unowned": "true", "name": "sshd"}, [50, 51]),
    ({"state": "T"}, [70]),
    ({"user": "deploy"}, [51]),
    ({"ordering": "-cpu_percent", "limit": 2}, [61, 60]),
])
def test_the_list_filters_and_orders(world, api, query, expected):
    alpha, _, web, _ = world
    api.force_authenticate(person(Role.VIEWER, alpha))
    assert pids(api.get("/api/processes/", {"host": web.pk, **query})) == expected


@pytest.mark.parametrize("query", [{"port": "22; id"}, {"port": 70000}, {"state": "Q"}, {"owner_kind": "cron"},
                                   {"ordering": "command"}, {"sort": "cpu"}, {"q": "x" * 300}])
def test_bad_filters_are_a_400(world, api, query):
    api.force_authenticate(person(Role.VIEWER, world[0]))
    response = api.get("/api/processes/", query)
    assert response.status_code == 400, response.content


def test_a_viewer_sees_only_the_processes_of_its_environments(world, api):
    alpha, _, web, db = world
    api.force_authenticate(person(Role.VIEWER, alpha))
    hosts = {row["host_name"] for row in api.get("/api/processes/", {"limit": 1000}).json()["results"]}
    assert hosts == {"web-1"}
    assert api.get(f"/api/processes/{db.processes.get(pid=80).pk}/").status_code == 404


def test_top_by_cpu_and_memory_fleet_wide_and_per_host(world, api, admin_all):
    alpha, _, web, _ = world
    api.force_authenticate(admin_all)
    assert [p["pid"] for p in api.get("/api/processes/top/", {"by": "cpu", "n": 3}).json()] == [80, 61, 60]
    per_host = api.get("/api/processes/top/", {"by": "memory", "n": 2, "host": web.pk}).json()
    assert [(p["host_name"], p["pid"]) for p in per_host] == [("web-1", 60), ("web-1", 61)]
    assert api.get("/api/processes/top/", {"by": "disk"}).status_code == 400
    assert api.get("/api/processes/top/", {"n": 1000}).status_code == 400
    assert api.get("/api/processes/top/", {"hosts": web.pk}).status_code == 400


def test_the_tree_nests_children_under_their_parents(world, api):
    alpha, _, web, db = world
    api.force_authenticate(person(Role.VIEWER, alpha))
    (root,) = api.get("/api/processes/tree/", {"host": web.pk}).json()
    assert root["pid"] == 1
    children = {child["pid"]: [c["pid"] for c in child["children"]] for child in root["children"]}
    assert children == {50: [51], 60: [61], 70: []}
    assert api.get("/api/processes/tree/", {"host": db.pk}).status_code == 404
    assert api.get("/api/processes/tree/").status_code == 400


ACTIONS = [("signal", {"signal": "HUP"}, "process.signal"), ("stop", {"grace_seconds": 3}, "process.stop"),
           ("pause", {}, "process.pause"), ("resume", {}, "process.resume"), ("kill", {}, "process.kill")]


@pytest.mark.parametrize("role, status", [(Role.VIEWER, 403), (Role.APPROVER, 403), (Role.OPERATOR, 201),
                                          (Role.ADMIN, 201)])
@pytest.mark.parametrize("name, body, action", ACTIONS, ids=[a[0] for a in ACTIONS])
def test_actions_launch_a_job_for_operators_and_admins_only(world, api, role, status, name, body, action):
    alpha, _, web, _ = world
    process = web.processes.get(pid=60)
    api.force_authenticate(person(role, alpha))
    response = api.post(reverse(f"api:process-{name}", args=[process.pk]), body, format="json")
    assert response.status_code == status, response.content
    if status != 201:
        assert not Job.objects.exists()
        return
    job = Job.objects.get(pk=response.json()["id"])
    (target,) = job.targets.all()
    assert job.action == action and target.kind == "process" and target.ref_id == process.pk
    assert (target.fingerprint["pid"], target.fingerprint["start_time"]) == (60, process.start_time)
    assert job.params["use_manager"] is True and job.params.get("signal", "HUP") == "HUP"


def test_actions_on_processes_of_other_environments_are_404(world, api):
    alpha, _, _, db = world
    api.force_authenticate(person(Role.OPERATOR, alpha))
    response = api.post(reverse("api:process-kill", args=[db.processes.get(pid=80).pk]), {}, format="json")
    assert response.status_code == 404 and not Job.objects.exists()


@pytest.mark.parametrize("name, body, field", [
    ("signal", {"signal": "TERM; rm -rf /"}, "signal"),
    ("signal", {"signal": "SEGV"}, "signal"),
    ("signal", {}, "signal"),
    ("stop", {"grace_seconds": "10; reboot"}, "grace_seconds"),
    ("stop", {"grace_seconds": 100000}, "grace_seconds"),
    ("pause", {"use_manager": "$(id)"}, "use_manager"),
])
def test_injection_attempts_in_action_parameters_are_a_400_before_any_job(world, api, name, body, field):
    alpha, _, web, _ = world
    api.force_authenticate(person(Role.OPERATOR, alpha))
    response = api.post(reverse(f"api:process-{name}", args=[web.processes.get(pid=60).pk]), body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["fields"], response.content
    assert not Job.objects.exists()


def test_scan_launches_a_job_on_hosts_or_on_an_environment(world, api, settings):
    alpha, beta, web, db = world
    settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN = True
    portal = factories.host(alpha, "portal", transport=Transport.LOCAL)
    operator = person(Role.OPERATOR, alpha)
    api.force_authenticate(operator)
    url = reverse("api:processscan-scan")
    one = api.post(url, {"hosts": [web.pk]}, format="json")
    assert one.status_code == 201 and one.json()["action"] == "processes.scan"
    everything = api.post(url, {"environment": "alpha"}, format="json")
    job = Job.objects.get(pk=everything.json()["id"])
    # The portal's own machine is left out for someone who may not act on it.
    assert list(job.targets.values_list("name", flat=True)) == ["web-1"]
    assert api.post(url, {"hosts": [portal.pk]}, format="json").status_code == 403
    assert api.post(url, {"hosts": [web.pk, db.pk]}, format="json").status_code == 400  # db is not visible
    assert api.post(url, {"environment": "beta"}, format="json").status_code == 400
    assert api.post(url, {"hosts": [web.pk], "environment": "alpha"}, format="json").status_code == 400
    api.force_authenticate(person(Role.VIEWER, alpha))
    assert api.post(url, {"hosts": [web.pk]}, format="json").status_code == 403


def test_scans_list_with_their_changes(world, api):
    alpha, _, web, _ = world
    api.force_authenticate(person(Role.VIEWER, alpha))
    rows = api.get("/api/process-scans/", {"host": web.pk}).json()["results"]
    assert len(rows) == 1 and rows[0]["process_count"] == 6 and rows[0]["first"] is True


def test_the_list_costs_the_same_queries_for_ten_or_a_thousand_processes(world, api, django_assert_max_num_queries):
    alpha, _, web, _ = world
    api.force_authenticate(person(Role.VIEWER, alpha))
    with django_assert_max_num_queries(20) as few:
        api.get("/api/processes/", {"limit": 1000})
    store.store_scan(web.pk, snapshot([proc(pid) for pid in range(2, 1002)], at=2_000_000_000))
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get("/api/processes/", {"limit": 1000})
    assert response.json()["count"] == 1000
