"""The global search: grouped by kind, only what the user may view, bounded queries."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.accounts.choices import Role
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.templates import create_template
from ops_portal.processes.models import Process
from ops_portal.programs.models import Program
from tests import factories
from tests.containers.helpers import container, engine, service
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def _process(host, pid, name):
    return Process.objects.create(host=host, pid=pid, ppid=1, user="root", name=name, command=name, state="S",
                                  start_time=1_700_000_000.0 + pid)


@pytest.fixture
def world(envs):
    """In alpha and in beta: a host, a container and a service, a program, a process, a job and a
    template whose names start with "pay"."""
    alpha, beta = envs
    rows = {}
    for env in (alpha, beta):
        admin = person(env, Role.ADMIN)
        host = factories.host(env, f"pay-{env.name}", address="127.0.0.1")
        box = engine(env, name=f"engine-{env.name}", url=f"tcp://127.0.0.1:{23750 + len(rows)}")
        rows[env.name] = {
            "host": host,
            "container": container(box, f"payments-{env.name}"),
            "service": service(box, f"payapi-{env.name}"),
            "program": Program.objects.create(host=host, manager="supervisord", name=f"payworker-{env.name}"),
            "process": _process(host, 4000, f"paycron-{env.name}"),
            "template": create_template(act(admin, source="web"), name=f"pay-restart-{env.name}", environment=env,
                                        action="host.command", selector={"all": True},
                                        action_params={"command": "true"}),
        }
    operator = person(alpha, Role.OPERATOR)
    rows["alpha"]["job"] = launch_adhoc(act(operator, source="web"), environment=alpha, action="host.command",
                                        values={"command": "true"}, selector={"all": True})
    return alpha, beta, rows


def test_the_api_groups_hits_by_kind_and_shows_only_the_viewers_environment(api, world):
    alpha, _, rows = world
    viewer = person(alpha, Role.VIEWER)
    api.force_authenticate(viewer)
    response = api.get("/api/search/", {"q": "PAY"})
    assert response.status_code == 200
    groups = {g["kind"]: [hit["name"] for hit in g["hits"]] for g in response.json()["groups"]}
    assert groups == {"hosts": ["pay-alpha"], "containers": ["payments-alpha"], "services": ["payapi-alpha"],
                      "programs": ["payworker-alpha"], "processes": ["paycron-alpha"],
                      "templates": ["pay-restart-alpha"]}
    host_hit = response.json()["groups"][0]["hits"][0]
    assert host_hit["url"] == f"/hosts/{rows['alpha']['host'].pk}/" and host_hit["environment"] == "alpha"


def test_a_job_is_found_by_its_number_only_where_the_user_may_view_it(api, world):
    alpha, beta, rows = world
    job = rows["alpha"]["job"]
    api.force_authenticate(person(alpha, Role.VIEWER))
    found = api.get("/api/search/", {"q": f"#{job.pk}"}).json()["groups"]
    assert [(g["kind"], g["hits"][0]["url"]) for g in found] == [("jobs", f"/jobs/{job.pk}/")]
    api.force_authenticate(person(beta, Role.VIEWER))
    assert api.get("/api/search/", {"q": f"#{job.pk}"}).json()["groups"] == []


def test_an_empty_query_is_a_400_with_the_field_named(api, world):
    alpha, _, _ = world
    api.force_authenticate(person(alpha, Role.VIEWER))
    response = api.get("/api/search/", {"q": "   "})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"q": ["Give something to look for."]}


def test_anonymous_search_is_refused(api, db):
    assert api.get("/api/search/", {"q": "pay"}).status_code in (401, 403)


def test_the_page_lists_links_by_kind_and_says_when_nothing_matches(client, world):
    alpha, _, rows = world
    client.force_login(person(alpha, Role.VIEWER))
    page = client.get("/search/", {"q": "pay"}).content.decode()
    for kind in ("hosts", "containers", "services", "programs", "processes", "templates"):
        assert f'data-kind="{kind}"' in page
    assert f'href="/containers/{rows["alpha"]["container"].pk}/" class="search-hit"' in page
    assert "payments-beta" not in page
    assert "Nothing you may see starts with" in client.get("/search/", {"q": "zzz"}).content.decode()
    fragment = client.get("/search/", {"q": "pay"}, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.startswith('<div id="search-results"') and "<html" not in fragment


def test_the_query_count_does_not_grow_with_the_rows(api, env):
    host = factories.host(env, "big-1")
    viewer = person(env, Role.VIEWER)
    api.force_authenticate(viewer)
    api.get("/api/search/", {"q": "work"})  # the session and the permission cache
    _process(host, 1, "worker-1")
    with CaptureQueriesContext(connection) as few:
        response = api.get("/api/search/", {"q": "work"})
    assert [len(g["hits"]) for g in response.json()["groups"]] == [1]
    Process.objects.bulk_create([Process(host=host, pid=pid, ppid=1, user="root", name=f"worker-{pid}",
                                         command="w", state="S", start_time=float(pid))
                                 for pid in range(2, 2002)])
    with CaptureQueriesContext(connection) as many:
        response = api.get("/api/search/", {"q": "work"})
    group = response.json()["groups"][0]
    assert len(group["hits"]) == 10 and group["more"] and group["more_url"] == "/processes/?q=work"
    assert len(many) == len(few)
