"""limit/offset lists count at most COUNT_CAP rows (or to the end of the page asked for): past it
the page says so ("N+ rows") and the API answers `count_capped: true`, and both still lead on to
the last row. Containers and services come by name, then engine, read in index order."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.accounts.choices import Role
from ops_portal.containers.models import Container
from ops_portal.core import counting
from ops_portal.inventory.models import Host
from tests import factories
from tests.containers.helpers import container, engine
from tests.helpers import person

pytestmark = pytest.mark.django_db


@pytest.fixture
def hosts():
    env = factories.environment("alpha")
    return env, [factories.host(env, f"host-{i:02}") for i in range(12)]


@pytest.fixture
def cap(monkeypatch):
    monkeypatch.setattr(counting, "COUNT_CAP", 5)
    return 5


def test_a_bounded_count_is_exact_below_the_bound_and_capped_above_it(hosts):
    queryset = Host.objects.select_related("environment").order_by("name")
    assert counting.bounded_count(queryset, 20) == (12, False)
    assert counting.bounded_count(queryset, 12) == (12, False)
    assert counting.bounded_count(queryset, 11) == (11, True)
    assert counting.bounded_count(queryset.filter(name__endswith="1"), 5) == (2, False)
    assert counting.bounded_count(queryset.none(), 5) == (0, False)


def test_a_bounded_count_of_grouped_distinct_and_combined_rows_counts_rows_not_groups(hosts):
    from django.db.models import Count

    env, made = hosts
    group = factories.host_group(env, "web")
    for host in made[:3]:
        host.groups.add(group)
    assert counting.bounded_count(Host.objects.annotate(n=Count("groups")), 20) == (12, False)
    assert counting.bounded_count(Host.objects.filter(groups__name__in=["web", "db"]).distinct(), 2) == (2, True)
    one_per_environment = Host.objects.order_by("environment_id", "name").distinct("environment_id")
    assert counting.bounded_count(one_per_environment, 5) == (1, False)
    both = Host.objects.filter(name="host-00").union(Host.objects.filter(name="host-01"))
    assert counting.bounded_count(both, 5) == (2, False)


def test_a_bounded_count_reads_no_more_rows_than_the_bound(hosts):
    with CaptureQueriesContext(connection) as captured:
        counting.bounded_count(Host.objects.select_related("environment").order_by("name"), 7)
    sql = captured.captured_queries[0]["sql"]
    assert "LIMIT 8" in sql and "ORDER BY" not in sql and "accounts_environment" not in sql


def test_the_api_says_when_its_count_is_capped_and_pages_on_to_the_last_row(hosts, cap, client):
    client.force_login(person(None, Role.ADMIN))
    url, seen, counts = "/api/hosts/?limit=2&ordering=name", [], []
    while url:
        body = client.get(url).json()
        seen += [row["name"] for row in body["results"]]
        counts.append((body["count"], body["count_capped"]))
        url = body["next"]
    assert seen == [f"host-{i:02}" for i in range(12)]
    assert counts[0] == (5, True)  # 12 rows, counted up to 5: "more than 5"
    assert counts[-1] == (12, False)  # the last page's bound reaches the end: exact


def test_the_api_count_is_exact_under_the_cap(hosts, client):
    client.force_login(person(None, Role.ADMIN))
    body = client.get("/api/hosts/?limit=5").json()
    assert (body["count"], body["count_capped"]) == (12, False)
    assert "offset=5" in body["next"]


def test_an_offset_past_the_cap_is_counted_to_its_page_end(hosts, cap, client):
    client.force_login(person(None, Role.ADMIN))
    body = client.get("/api/hosts/?limit=2&offset=6&ordering=name").json()
    assert [row["name"] for row in body["results"]] == ["host-06", "host-07"]
    assert (body["count"], body["count_capped"]) == (8, True)
    assert "offset=8" in body["next"] and "offset=4" in body["previous"]


def test_bad_paging_values_get_the_first_page_not_an_error(hosts, cap, client):
    client.force_login(person(None, Role.ADMIN))
    assert client.get("/api/hosts/?limit=2&offset=-3").status_code == 200
    assert client.get(f"/api/hosts/?limit=2&offset={10**30}").json()["results"] == []
    for page in ("x", "-2", "0", str(10**30)):
        assert client.get(f"/hosts/?page={page}").status_code == 200


def test_the_paginator_of_pages_keeps_a_next_page_past_a_capped_count(hosts):
    queryset = Host.objects.order_by("name")
    first = counting.CappedPaginator(queryset, 2, wanted=1, cap=5)
    page = first.get_page(1)
    assert (first.count, first.capped, first.num_pages) == (5, True, 3)
    last_counted = counting.CappedPaginator(queryset, 2, wanted=3, cap=5).get_page(3)
    assert last_counted.has_next() and last_counted.next_page_number() == 4
    far = counting.CappedPaginator(queryset, 2, wanted=6, cap=5)
    end = far.get_page(6)
    assert (far.count, far.capped, end.has_next()) == (12, False, False)
    assert [h.name for h in end] == ["host-10", "host-11"]
    assert [h.name for h in page] == ["host-00", "host-01"]


def test_the_hosts_page_says_its_count_is_capped_and_links_on(cap, client):
    env = factories.environment("alpha")
    for i in range(55):
        factories.host(env, f"host-{i:02}")
    client.force_login(person(None, Role.ADMIN))
    first = client.get("/hosts/").content.decode()
    assert "page 1 of 1+ (50+ rows)" in first  # counted to the page's end (50 a page): more follow
    assert re.search(r'href="\?[^"]*page=2"', first)
    second = client.get("/hosts/?page=2").content.decode()
    assert "page 2 of 2 (55 rows)" in second
    assert "host-54" in second and "older →" not in second


def test_containers_come_by_name_then_engine_ordered_in_the_container_table(client):
    env = factories.environment("alpha")
    one, two = engine(env, "zeta", url="tcp://10.0.0.1:2376"), engine(env, "alpha", url="tcp://10.0.0.2:2376")
    for eng, name in [(one, "web-1"), (two, "web-1"), (one, "api"), (two, "db")]:
        container(eng, name, docker_id=f"{eng.pk}{name}".encode().hex().ljust(64, "0"))
    client.force_login(person(env, Role.VIEWER))
    expected = [("api", one.pk), ("db", two.pk), ("web-1", min(one.pk, two.pk)), ("web-1", max(one.pk, two.pk))]
    assert [(c.name, c.engine_id) for c in Container.objects.all()] == expected
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/containers/").content.decode()
    assert page.index("api") < page.index("db") < page.index("web-1")
    rows = [q["sql"] for q in captured.captured_queries if 'FROM "containers_container"' in q["sql"]
            and "LIMIT" in q["sql"] and "count(" not in q["sql"].lower()]
    assert rows and all(q.split("ORDER BY")[1].strip().startswith(
        '"containers_container"."name" ASC, "containers_container"."engine_id" ASC') for q in rows)
    api = client.get("/api/containers/").json()["results"]
    assert [(c["name"], c["engine_id"]) for c in api] == expected
    reverse = client.get("/api/containers/?ordering=-name").json()["results"]
    assert [c["name"] for c in reverse][:2] == ["web-1", "web-1"] and reverse[-1]["name"] == "api"


def test_programs_come_crash_loops_first_then_by_name_and_host_from_their_index(client):
    from tests.programs.helpers import program

    env = factories.environment("alpha")
    b, a = factories.host(env, "host-b"), factories.host(env, "host-a")
    program(b, "worker"), program(a, "worker"), program(b, "api"), program(a, "zeta", crash_loop=True)
    client.force_login(person(env, Role.VIEWER))
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/programs/").content.decode()
    shown = re.findall(r'href="/programs/(\d+)/"', page)
    from ops_portal.programs.models import Program

    names = [(p.name, p.host.name) for p in (Program.objects.get(pk=int(pk)) for pk in dict.fromkeys(shown))]
    assert names == [("zeta", "host-a"), ("api", "host-b"), ("worker", "host-b"), ("worker", "host-a")]
    rows = [q["sql"] for q in captured.captured_queries if 'FROM "programs_program"' in q["sql"]
            and "ORDER BY" in q["sql"]]
    assert rows and rows[0].split("ORDER BY")[1].strip().startswith(
        '"programs_program"."crash_loop" DESC, "programs_program"."name" ASC, "programs_program"."host_id" ASC')


@pytest.fixture
def deferred_from(monkeypatch):
    monkeypatch.setattr(counting, "DEFERRED_FROM", 3)
    return 3


def _sql(captured):
    return [query["sql"] for query in captured.captured_queries]


def test_a_deep_offset_reads_the_page_keys_first_and_gives_the_same_rows(hosts, deferred_from):
    queryset = Host.objects.select_related("environment").order_by("-name")
    plain = [host.name for host in queryset[4:9]]
    with CaptureQueriesContext(connection) as captured:
        rows = counting.page_rows(queryset, 4, 5)
    assert [host.name for host in rows] == plain == ["host-07", "host-06", "host-05", "host-04", "host-03"]
    keys, page = _sql(captured)
    assert "OFFSET 4" in keys and '"inventory_environment"' not in keys  # the walk reads keys, not rows
    assert "OFFSET" not in page and " IN (" in page
    assert rows[0].environment.name == "alpha"  # the rows are whole, relations included
    # values() rows too (the API's 1,000-row lists), and a page past the end is empty
    assert [row["name"] for row in counting.page_rows(queryset.values("name"), 4, 5)] == plain
    assert counting.page_rows(queryset, 30, 5) == []


def test_a_shallow_offset_or_unordered_rows_are_read_in_one_query(hosts, deferred_from):
    with CaptureQueriesContext(connection) as captured:
        assert len(counting.page_rows(Host.objects.order_by("name"), 2, 5)) == 5
        assert len(counting.page_rows(Host.objects.order_by(), 4, 5)) == 5  # no order: nothing to defer to
    assert len(captured.captured_queries) == 2


def test_the_api_and_the_pages_give_the_same_rows_at_a_deep_offset(hosts, deferred_from, cap, client):
    from ops_portal.audit.models import AuditEvent

    env, _ = hosts
    for i in range(12):
        AuditEvent.objects.create(action="host.update", object_repr=f"row-{i}", environment=env,
                                  environment_name=env.name, source="api", after={"i": i})
    client.force_login(person(None, Role.ADMIN))
    answer = client.get("/api/hosts/?limit=4&offset=6&ordering=name").json()
    assert [row["name"] for row in answer["results"]] == [f"host-{i:02}" for i in range(6, 10)]
    assert answer["count"] == 10 and answer["count_capped"] is True  # counted to the page's end
    whole = client.get("/api/audit/?limit=1000").json()["results"]
    assert len(whole) >= 12
    deep = client.get("/api/audit/?limit=5&offset=4").json()
    assert deep["results"] == whole[4:9]
    paginator = counting.CappedPaginator(Host.objects.order_by("name"), 4, wanted=3)
    assert [host.name for host in paginator.page(3)] == [f"host-{i:02}" for i in range(8, 12)]
    with_orphans = counting.CappedPaginator(Host.objects.order_by("name"), 5, orphans=2, wanted=2, cap=100)
    assert [host.name for host in with_orphans.page(2)] == [f"host-{i:02}" for i in range(5, 12)]
