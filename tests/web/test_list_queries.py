"""Every list page and list endpoint of hosts, containers, services, programs, processes, jobs,
audit and alerts costs a fixed number of queries: the same for a handful of rows as for many
times more (no per-row queries), and at most the pinned count. A view that starts asking per row
fails here with the queries it made."""
import datetime

import pytest
from django.db import connection
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.jobs.models import Job, JobTarget, JobTemplate
from ops_portal.monitoring.models import Alert, AlertRule
from ops_portal.processes import store
from tests import factories
from tests.containers.helpers import container, engine, service
from tests.helpers import person
from tests.processes.helpers import proc, snapshot
from tests.programs.helpers import program

pytestmark = pytest.mark.django_db

# The most queries each list may make (for a viewer of one environment or an administrator of
# all, whichever needs more: session, user, role bindings, count, rows, their relations, the
# page's forms), and a name each shows from the newest rows.
PINNED = {
    "/hosts/": (12, "host-{r}-1"),  # 12th: the add-host form's site choices
    "/api/hosts/?limit=1000": (7, "host-{r}-1"),
    "/containers/": (8, "c-{r}-1"),
    "/api/containers/?limit=1000": (5, "c-{r}-1"),
    "/containers/services/": (6, "s-{r}-1"),
    "/api/services/?limit=1000": (5, "s-{r}-1"),
    "/programs/": (9, "p-{r}-1"),
    "/api/programs/?limit=1000": (6, "p-{r}-1"),
    "/processes/": (10, "host-{r}-1"),
    "/api/processes/?limit=1000": (5, "host-{r}-1"),
    "/jobs/": (6, "job {r}-1"),  # one query counts the page's targets by state (ok, failed, canceled, lost)
    "/api/jobs/?limit=1000": (5, "job {r}-1"),
    "/audit/": (4, "host-{r}-1"),
    "/api/audit/?limit=1000": (4, "host-{r}-1"),
    "/monitoring/": (8, "host-{r}-1"),
    "/api/alerts/?limit=1000": (5, "host-{r}-1"),
}


class World:
    """Rows of every listed kind in one environment, added in rounds of `n` of each."""

    def __init__(self):
        self.env = factories.environment("alpha")
        self.other = factories.environment("beta")
        self.credential = factories.credential(self.env, "key")
        self.group = factories.host_group(self.env, "web")
        self.engine = engine(self.env)
        self.template = JobTemplate.objects.create(name="uptime", environment=self.env, action="host.command",
                                                   action_params={"command": "uptime"})
        self.rule = AlertRule.objects.create(name="cpu-high", environment=self.env, metric="cpu", threshold=90)
        self.round = 0

    def grow(self, n):
        self.round += 1
        r = self.round
        now = timezone.now()
        for i in range(n):
            name = f"r{r}-{i}"
            host = factories.host(self.env, f"host-{name}", credential=self.credential, tags=["web"])
            host.groups.add(self.group)
            factories.host(self.other, f"other-{name}")
            container(self.engine, f"c-{name}", labels={"app": "web"})
            service(self.engine, f"s-{name}")
            program(host, f"p-{name}")
            store.store_scan(host.pk, snapshot([proc(1, "init", ppid=0), proc(100 + i, "nginx")]))
            job = Job.objects.create(name=f"job {name}", environment=self.env, action="host.command",
                                     template=self.template, template_version=1, plan_hash="x" * 64,
                                     state="succeeded", targets_total=1, targets_done=1, created_by_name="alice",
                                     created=now - datetime.timedelta(seconds=i))
            JobTarget.objects.create(job=job, index=0, kind="host", ref_id=host.pk, name=host.name)
            Alert.objects.create(rule=self.rule, source="rule", key=f"cpu:{name}", environment=self.env,
                                 host=host, host_name=host.name, metric="cpu", severity="warning",
                                 summary="CPU high", fired_at=now, state="firing" if i % 2 else "resolved",
                                 resolved_at=None if i % 2 else now)
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO audit_auditevent (time, actor_name, action, object_type, object_id, object_repr, "
                    "environment_id, environment_name, request_id, source) "
                    "VALUES (now(), 'alice', 'host.create', 'inventory.host', %s, %s, %s, 'alpha', '', 'api')",
                    [str(host.pk), host.name, self.env.pk])


@pytest.fixture
def world():
    return World()


def count_queries(client, url, django_assert_max_num_queries, limit):
    with django_assert_max_num_queries(limit) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:500])
    return len(captured.captured_queries), response


@pytest.mark.parametrize("role", ["viewer", "admin_all"])
@pytest.mark.parametrize("url", list(PINNED))
def test_a_list_costs_the_same_queries_for_few_and_many_rows(world, client, url, role,
                                                            django_assert_max_num_queries):
    most, marker = PINNED[url]
    user = person(world.env, Role.VIEWER) if role == "viewer" else person(None, Role.ADMIN)
    client.force_login(user)
    world.grow(2)
    few, _ = count_queries(client, url, django_assert_max_num_queries, most)
    world.grow(12)
    many, response = count_queries(client, url, django_assert_max_num_queries, few)
    assert many == few
    assert marker.format(r=f"r{world.round}") in response.content.decode()
