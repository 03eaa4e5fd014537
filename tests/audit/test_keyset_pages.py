"""The audit log pages by position: every row once, in order, ties in time included, the same
filters, no count and no OFFSET; `offset` still gives the older counted pages."""
import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.audit.models import AuditEvent
from ops_portal.core import keyset
from tests import factories

pytestmark = pytest.mark.django_db

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def insert_rows(count, *, environment=None, same_time_every=3, action="host.create"):
    """Audit rows whose times repeat in groups (ties the pk must break), oldest first. Inserted in
    SQL because the model stamps `time` itself."""
    with connection.cursor() as cursor:
        for i in range(count):
            cursor.execute(
                "INSERT INTO audit_auditevent (time, actor_name, action, object_type, object_id, object_repr, "
                "environment_id, environment_name, request_id, source) "
                "VALUES (%s, 'alice', %s, 'inventory.host', %s, %s, %s, %s, '', 'api')",
                [START + datetime.timedelta(seconds=i // same_time_every), action, str(i), f"host-{i}",
                 environment.pk if environment else None, environment.name if environment else ""])
    return list(AuditEvent.objects.order_by("-time", "-pk").values_list("pk", flat=True))


@pytest.fixture
def admin(api, admin_all):
    api.force_authenticate(admin_all)
    return api


def walk(api, url, params):
    seen, pages = [], 0
    response = api.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        body = response.json()
        assert "count" not in body
        seen += [row["id"] for row in body["results"]]
        pages += 1
        if not body["next"]:
            return seen, pages, body
        response = api.get(body["next"])


def test_the_api_walks_every_row_once_newest_first_with_ties_in_time(admin):
    expected = insert_rows(23)
    seen, pages, _ = walk(admin, "/api/audit/", {"limit": 5, "action": "host.create"})
    assert seen == expected
    assert pages == 5


def test_previous_links_lead_back_to_the_same_pages(admin):
    insert_rows(17)
    first = admin.get("/api/audit/", {"limit": 5}).json()
    assert first["previous"] is None
    second = admin.get(first["next"]).json()
    third = admin.get(second["next"]).json()
    back = admin.get(third["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in second["results"]]
    back = admin.get(back["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]
    assert back["previous"] is None


def test_filters_and_ordering_apply_to_every_page(admin, envs):
    alpha, beta = envs
    insert_rows(12, environment=alpha)
    insert_rows(9, environment=beta, action="host.delete")
    expected = list(AuditEvent.objects.filter(environment_name="beta").order_by("time", "pk")
                    .values_list("pk", flat=True))
    seen, _, _ = walk(admin, "/api/audit/", {"limit": 4, "environment": "beta", "ordering": "time"})
    assert seen == expected
    by_action = walk(admin, "/api/audit/", {"limit": 7, "ordering": "-action"})[0]
    assert by_action == list(AuditEvent.objects.order_by("-action", "-pk").values_list("pk", flat=True))


def test_a_user_pages_only_through_the_environments_they_view(api, envs, make_user):
    from ops_portal.accounts.choices import Role

    alpha, beta = envs
    insert_rows(6, environment=alpha)
    insert_rows(6, environment=beta)
    api.force_authenticate(make_user(Role.VIEWER, alpha))
    seen, _, _ = walk(api, "/api/audit/", {"limit": 4, "action": "host.create"})
    assert seen == list(AuditEvent.objects.filter(environment=alpha).order_by("-time", "-pk")
                        .values_list("pk", flat=True))


def test_a_page_neither_counts_nor_skips_rows(admin):
    insert_rows(30)
    first = admin.get("/api/audit/", {"limit": 10}).json()
    with CaptureQueriesContext(connection) as queries:
        assert admin.get(first["next"]).status_code == 200
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "COUNT(" not in sql and "OFFSET" not in sql


def test_offset_still_gives_counted_pages(admin):
    expected = insert_rows(12)
    body = admin.get("/api/audit/", {"limit": 5, "offset": 5, "action": "host.create"}).json()
    assert body["count"] == 12
    assert [r["id"] for r in body["results"]] == expected[5:10]


@pytest.mark.parametrize("cursor", ["nonsense", "e30", "eyJ2IjoieCIsImsiOjEsImQiOiJuIn0",  # {"v":"x","k":1,"d":"n"}
                                    "eyJ2IjpudWxsLCJrIjoxLCJkIjoibiJ9", "x" * 500])
def test_a_cursor_this_list_did_not_make_is_a_field_error(admin, cursor):
    insert_rows(3)
    response = admin.get("/api/audit/", {"cursor": cursor})
    assert response.status_code == 400, response.content
    assert "cursor" in response.json()["error"]["fields"]


def test_a_bad_limit_is_a_field_error(admin):
    assert "limit" in admin.get("/api/audit/", {"limit": "0"}).json()["error"]["fields"]
    assert "limit" in admin.get("/api/audit/", {"limit": "many"}).json()["error"]["fields"]


def test_the_page_walks_older_and_newer_without_counting(client, admin_all):
    env = factories.environment("alpha")
    expected = insert_rows(120, environment=env)
    client.force_login(admin_all)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/audit/", {"environment": "alpha"})
    assert "COUNT(" not in " ".join(q["sql"].upper() for q in queries.captured_queries)
    page = response.context["page"]
    assert [e.pk for e in page] == expected[:50]
    assert page.previous_cursor is None
    assert 'rel="next"' in response.content.decode()
    second = client.get("/audit/", {"environment": "alpha", "cursor": page.next_cursor}).context["page"]
    assert [e.pk for e in second] == expected[50:100]
    third = client.get("/audit/", {"environment": "alpha", "cursor": second.next_cursor}).context["page"]
    assert [e.pk for e in third] == expected[100:] and third.next_cursor is None
    back = client.get("/audit/", {"environment": "alpha", "cursor": third.previous_cursor}).context["page"]
    assert [e.pk for e in back] == expected[50:100]
    # An edited cursor shows the first page rather than an error.
    edited = client.get("/audit/", {"environment": "alpha", "cursor": "garbage"}).context["page"]
    assert [e.pk for e in edited] == expected[:50]


def test_keyset_orderings_must_be_one_column_and_the_primary_key():
    for ordering in (["-time", "pk"], ["time", "action"], ["-environment"], [], ["a", "b", "c"]):
        with pytest.raises(ValueError):
            keyset.parse_ordering(AuditEvent, ordering)
    field, descending = keyset.parse_ordering(AuditEvent, ["-time", "-pk"])
    assert field.name == "time" and descending


def test_a_viewer_filtering_on_an_environment_it_cannot_see_gets_nothing_without_reading_rows(client, api):
    from ops_portal.accounts.choices import Role
    from tests.helpers import person

    alpha, beta = factories.environment("alpha"), factories.environment("beta")
    insert_rows(4, environment=alpha)
    insert_rows(4, environment=beta)
    viewer = person(alpha, Role.VIEWER)
    api.force_authenticate(viewer)
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as captured:
        assert api.get("/api/audit/", {"environment": "beta"}).json()["results"] == []
        page = client.get("/audit/", {"environment": "beta"})
    assert page.status_code == 200 and "host-0" not in page.content.decode()
    assert not [q for q in captured.captured_queries if 'FROM "audit_auditevent"' in q["sql"]]
    mine = api.get("/api/audit/", {"environment": "alpha"}).json()["results"]
    assert len(mine) == 4 and {row["environment_name"] for row in mine} == {"alpha"}
