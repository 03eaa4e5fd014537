"""The audit log is append-only, written with the change it describes, exportable, and filtered on its page."""
import csv
import datetime
import io
import json

import pytest
from django.db import DatabaseError, connection, transaction

from ops_portal.accounts import services as access
from ops_portal.accounts.choices import Role
from ops_portal.audit import services as audit
from ops_portal.audit.models import AppendOnlyError, AuditEvent
from ops_portal.audit.registry import UnknownAuditAction
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from tests import factories
from tests.helpers import sign_in

pytestmark = pytest.mark.django_db


def actor_for(user, source=Source.API):
    return Actor(user.pk, user.username, source, "req-123456789", "10.1.2.3")


def test_rows_cannot_be_changed_or_deleted_through_the_orm(envs):
    with transaction.atomic():
        event = audit.record(Actor.system(), "audit.export", environment=envs[0])
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only")
def test_the_database_refuses_updates_and_deletes_whoever_asks(envs):
    with transaction.atomic():
        event = audit.record(Actor.system(), "audit.export")
    for sql in ("UPDATE audit_auditevent SET action='x' WHERE id=%s", "DELETE FROM audit_auditevent WHERE id=%s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "audit.export"


def test_prune_removes_old_rows_and_audits_itself(envs):
    with transaction.atomic():
        recent = audit.record(Actor.system(), "audit.export")
    with connection.cursor() as cursor:  # an old row, inserted as it was written a year ago
        cursor.execute(
            "INSERT INTO audit_auditevent (time, actor_name, action, object_type, object_id, object_repr, "
            "environment_name, request_id, source) VALUES (%s, '', 'audit.export', '', '', 'old', '', 'r', 'system')",
            [recent.time - datetime.timedelta(days=400)],
        )
    removed = audit.prune(Actor.system(), older_than_days=365)
    assert removed == 1
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == ["audit.export", "audit.prune"]
    assert AuditEvent.objects.get(action="audit.prune").extra["removed"] == 1


@pytest.mark.django_db(transaction=True)
def test_record_refuses_unknown_actions_and_calls_outside_a_transaction():
    with pytest.raises(UnknownAuditAction), transaction.atomic():
        audit.record(Actor.system(), "no.such.action")
    with pytest.raises(RuntimeError, match="inside transaction"):
        audit.record(Actor.system(), "audit.export")


def test_a_change_and_its_audit_row_commit_or_roll_back_together(admin_all, envs):
    actor = actor_for(admin_all)
    with pytest.raises(RuntimeError), transaction.atomic():
        access.create_team(actor, name="rolled-back")
        raise RuntimeError("fail after the write")
    assert not AuditEvent.objects.filter(action="team.create").exists()
    team = access.create_team(actor, name="kept")
    event = AuditEvent.objects.get(action="team.create")
    assert (event.object_id, event.actor_name, event.request_id, event.client_address, event.source) == (
        str(team.pk), admin_all.username, "req-123456789", "10.1.2.3", "api")


def test_rows_keep_the_actor_name_after_the_user_is_renamed(admin_all, envs):
    access.create_team(actor_for(admin_all), name="ops")
    admin_all.username = "renamed"
    admin_all.save()
    assert AuditEvent.objects.get(action="team.create").actor_name == "root-admin"


def test_secrets_never_reach_the_audit_log(admin_all, envs):
    from ops_portal.inventory import services as inventory
    from tests.keys import ED25519_PRIVATE

    inventory.create_credential(actor_for(admin_all), name="k", environment=envs[0], private_key=ED25519_PRIVATE)
    event = AuditEvent.objects.get(action="credential.create")
    assert event.after["private_key"] == "<secret>"
    assert "PRIVATE KEY" not in json.dumps(event.after)


def test_export_streams_csv_and_json_lines_of_the_filtered_rows(api, admin_all, envs):
    alpha, beta = envs
    access.create_team(actor_for(admin_all), name="t1")
    access.create_binding(actor_for(admin_all), role=Role.VIEWER, environment=alpha, user=factories.user())
    api.force_authenticate(admin_all)
    response = api.get("/api/audit/export/", {"file_format": "jsonl", "environment": "alpha"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [r["action"] for r in rows] == ["rolebinding.create"]
    response = api.get("/api/audit/export/", {"file_format": "csv", "action_prefix": "team."})
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["action"], r["object_repr"]) for r in table] == [("team.create", "t1")]
    assert AuditEvent.objects.filter(action="audit.export", actor=admin_all).count() == 2


def test_export_needs_a_known_format(api, admin_all):
    api.force_authenticate(admin_all)
    response = api.get("/api/audit/export/", {"file_format": "xml"})
    assert response.status_code == 400
    assert "file_format" in response.json()["error"]["fields"]


def test_viewers_see_audit_rows_of_their_environments_only(api, make_user, admin_all, envs):
    alpha, beta = envs
    for env in envs:
        access.create_binding(actor_for(admin_all), role=Role.VIEWER, environment=env, user=factories.user())
    viewer = make_user(Role.VIEWER, alpha)
    api.force_authenticate(viewer)
    rows = api.get("/api/audit/", {"action": "rolebinding.create"}).json()["results"]
    assert [r["environment_name"] for r in rows] == ["alpha"]


@pytest.mark.usefixtures("fresh_sign_in_throttle")
def test_audit_page_filters_rows(client):
    factories.superuser("admin")
    sign_in(client, "admin")
    page = client.get("/audit/", {"action": "auth.login"}).content.decode()
    assert "auth.login" in page
    assert client.get("/audit/", {"since": "garbage"}).status_code == 200  # shown as a form error


def test_the_environment_filter_finds_rows_by_the_environment_and_keeps_deleted_ones_by_name(
        api, make_user, admin_all, envs):
    from ops_portal.audit.models import AuditEvent

    alpha, beta = envs
    for env in envs:
        access.create_binding(actor_for(admin_all), role=Role.VIEWER, environment=env, user=factories.user())
    AuditEvent.objects.create(action="host.delete", environment_name="gone", object_repr="old")  # its env deleted
    api.force_authenticate(admin_all)
    assert [r["environment_name"] for r in api.get("/api/audit/", {"environment": "beta"}).json()["results"]
            if r["action"] == "rolebinding.create"] == ["beta"]
    assert [r["object_repr"] for r in api.get("/api/audit/", {"environment": "gone"}).json()["results"]] == ["old"]
    viewer = make_user(Role.VIEWER, alpha)
    api.force_authenticate(viewer)
    assert api.get("/api/audit/", {"environment": "beta"}).json()["results"] == []  # not its environment
    assert api.get("/api/audit/", {"environment": "alpha"}).json()["results"]
