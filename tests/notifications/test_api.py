"""The notifications API: channels with write-only secrets, actions, deliveries, and 400s for bad input."""
import pytest
from django.db import connection
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.notifications import tasks
from ops_portal.notifications.choices import DeliveryStatus
from ops_portal.notifications.models import Delivery, NotificationChannel
from tests.notifications.helpers import SECRET, channel, delivery

pytestmark = pytest.mark.django_db
CHANNELS = reverse("api:notificationchannel-list")
DELIVERIES = reverse("api:delivery-list")


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Record what would be queued instead of talking to the broker."""
    sent = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, countdown=None, **kw: sent.append(args[0]))
    return sent


def detail(pk, action=None):
    if action:
        return reverse(f"api:notificationchannel-{action}", args=[pk])
    return reverse("api:notificationchannel-detail", args=[pk])


def webhook_payload(env, **overrides):
    return {"name": "chatops", "environment": env.name, "kind": "webhook",
            "url": "https://hooks.example.com/in?token=abc", "events": ["job.failed", "job.succeeded"],
            **overrides}


def raw_secret(pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {NotificationChannel._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_a_given_secret_is_stored_encrypted_and_never_returned(api, envs, admin_all):
    api.force_authenticate(admin_all)
    response = api.post(CHANNELS, webhook_payload(envs[0], secret=SECRET), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "secret" not in body and SECRET not in response.content.decode()
    assert body["url"] == "https://hooks.example.com/in?token=abc"  # URLs are shown in the API
    pk = body["id"]
    assert NotificationChannel.objects.get(pk=pk).secret == SECRET
    stored = raw_secret(pk)
    assert stored and SECRET not in stored and stored.startswith("gAAAA")  # a Fernet token
    for response in (api.get(CHANNELS), api.get(detail(pk)),
                     api.patch(detail(pk), {"enabled": False}, format="json")):
        assert response.status_code == 200
        assert SECRET not in response.content.decode() and stored not in response.content.decode()
    events = AuditEvent.objects.filter(object_type="notifications.notificationchannel", object_id=str(pk))
    assert events.count() == 2
    assert all(e.after["secret"] == "<secret>" for e in events)
    assert SECRET not in str(list(events.values()))


def test_a_secret_is_generated_when_none_is_given_and_shown_once_by_rotate(api, envs, admin_all):
    api.force_authenticate(admin_all)
    pk = api.post(CHANNELS, webhook_payload(envs[0]), format="json").json()["id"]
    generated = NotificationChannel.objects.get(pk=pk).secret
    assert len(generated) >= 40

    response = api.post(detail(pk, "rotate-secret"), {}, format="json")
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    new = response.json()["secret"]
    assert new != generated and NotificationChannel.objects.get(pk=pk).secret == new
    assert response.json()["secret_rotated"]
    assert new not in api.get(detail(pk)).content.decode()
    event = AuditEvent.objects.latest("pk")
    assert event.action == "notificationchannel.rotate_secret" and event.actor_id == admin_all.pk
    assert new not in str(event.before) + str(event.after)

    chosen = "receiver-chosen-secret-000000000"
    response = api.post(detail(pk, "rotate-secret"), {"secret": chosen}, format="json")
    assert response.json()["secret"] == chosen and NotificationChannel.objects.get(pk=pk).secret == chosen
    assert api.post(detail(pk, "rotate-secret"), {"secret": "short"}, format="json").status_code == 400


def test_the_secret_changes_only_through_rotate(api, envs, admin_all):
    hook = channel(envs[0])
    api.force_authenticate(admin_all)
    response = api.patch(detail(hook.pk), {"secret": "a-brand-new-secret-0000000"}, format="json")
    assert response.status_code == 400
    assert "rotate-secret" in response.json()["error"]["fields"]["secret"][0]
    assert NotificationChannel.objects.get(pk=hook.pk).secret == SECRET


@pytest.mark.parametrize("overrides, field", [
    ({"url": "ftp://files.example.com/in"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": ""}, "url"),
    ({"events": ["job.failed", "job.exploded"]}, "events"),
    ({"events": []}, "events"),
    ({"events": "job.failed"}, "events"),
    ({"kind": "email", "url": "", "emails": ["ops@example.com", "not-an-address"]}, "emails"),
    ({"kind": "email", "url": "", "emails": []}, "emails"),
    ({"kind": "email", "url": "", "emails": "ops@example.com"}, "emails"),
    ({"kind": "pager"}, "kind"),
    ({"name": "no spaces please"}, "name"),
    ({"environment": "nowhere"}, "environment"),
    ({"secret": "too-short"}, "secret"),
])
def test_bad_input_is_a_400_with_field_errors(api, envs, admin_all, overrides, field):
    api.force_authenticate(admin_all)
    response = api.post(CHANNELS, webhook_payload(envs[0], **overrides), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error
    assert not NotificationChannel.objects.exists()


def test_a_duplicate_name_in_the_environment_is_a_400(api, envs, admin_all):
    channel(envs[0], "chatops")
    channel(envs[1], "chatops-beta")
    api.force_authenticate(admin_all)
    assert api.post(CHANNELS, webhook_payload(envs[0]), format="json").status_code == 400
    assert api.post(CHANNELS, webhook_payload(envs[1]), format="json").status_code == 201


def test_an_email_channel_is_created_with_its_recipients(api, envs, admin_all):
    api.force_authenticate(admin_all)
    response = api.post(CHANNELS, webhook_payload(envs[0], kind="email", url="",
                                                  emails=["ops@example.com", "ops@example.com", "b@example.org"]),
                        format="json")
    assert response.status_code == 201, response.content
    assert response.json()["emails"] == ["ops@example.com", "b@example.org"]


def test_updates_are_validated_against_the_whole_channel(api, envs, admin_all):
    hook = channel(envs[0])
    api.force_authenticate(admin_all)
    response = api.patch(detail(hook.pk), {"kind": "email"}, format="json")
    assert response.status_code == 400 and "emails" in response.json()["error"]["fields"]
    response = api.patch(detail(hook.pk), {"url": "gopher://old.example.com/"}, format="json")
    assert response.status_code == 400 and "url" in response.json()["error"]["fields"]


def test_rotate_and_test_need_manage_in_the_channel_environment(api, envs, make_user):
    hook = channel(envs[0])
    hidden = channel(envs[1])
    for role in (Role.VIEWER, Role.OPERATOR, Role.APPROVER):
        api.force_authenticate(make_user(role, envs[0]))
        assert api.post(detail(hook.pk, "rotate-secret"), {}, format="json").status_code == 403
        assert api.post(detail(hook.pk, "test"), format="json").status_code == 403
    admin = make_user(Role.ADMIN, envs[0])
    api.force_authenticate(admin)
    assert api.post(detail(hidden.pk, "rotate-secret"), {}, format="json").status_code == 404
    assert api.post(detail(hidden.pk, "test"), format="json").status_code == 404
    assert NotificationChannel.objects.get(pk=hook.pk).secret == SECRET
    assert not Delivery.objects.exists()


def test_the_test_action_queues_a_test_delivery_to_that_channel(api, envs, make_user, no_broker,
                                                                django_capture_on_commit_callbacks):
    hook = channel(envs[0], events=["job.failed"], enabled=False)
    admin = make_user(Role.ADMIN, envs[0])
    api.force_authenticate(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(detail(hook.pk, "test"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["event"], body["channel"], body["status"], body["environment"]) == ("test", hook.pk, "pending",
                                                                                     "alpha")
    assert no_broker == [body["id"]]
    event = AuditEvent.objects.latest("pk")
    assert (event.action, event.actor_id, event.extra) == ("notificationchannel.test", admin.pk,
                                                           {"delivery": body["id"]})


def test_deliveries_are_listed_in_scope_and_filtered(api, envs, make_user):
    hook, mailbox = channel(envs[0]), channel(envs[0], kind="email")
    sent = delivery(hook, status=DeliveryStatus.DELIVERED)
    failed = delivery(mailbox, status=DeliveryStatus.FAILED, event="job.succeeded")
    pending = delivery(hook)
    delivery(channel(envs[1]))
    api.force_authenticate(make_user(Role.VIEWER, envs[0]))

    def ids(**params):
        response = api.get(DELIVERIES, params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids() == {sent.pk, failed.pk, pending.pk}
    assert ids(status="failed") == {failed.pk}
    assert ids(status=["failed", "pending"]) == {failed.pk, pending.pk}
    assert ids(event="job.succeeded") == {failed.pk}
    assert ids(channel=hook.pk) == {sent.pk, pending.pk}
    assert ids(environment="beta") == set()
    assert api.get(DELIVERIES, {"colour": "red"}).status_code == 400
    assert api.get(DELIVERIES, {"status": "lost"}).status_code == 400
    row = api.get(reverse("api:delivery-detail", args=[failed.pk])).json()
    assert row["channel_name"] == mailbox.name and row["payload"] == {"job": 1}


def test_listing_deliveries_costs_the_same_queries_for_many_rows(api, envs, admin_all,
                                                                 django_assert_max_num_queries):
    hooks = [channel(envs[0]) for _ in range(3)]
    api.force_authenticate(admin_all)
    for hook in hooks:
        delivery(hook)
    with django_assert_max_num_queries(20) as few:
        assert api.get(DELIVERIES).status_code == 200
    for hook in hooks:
        for _ in range(10):
            delivery(hook)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(DELIVERIES).json()["results"]) == 33


def test_a_failed_delivery_is_retried_by_an_operator(api, envs, make_user, no_broker,
                                                     django_capture_on_commit_callbacks):
    hook = channel(envs[0])
    failed = delivery(hook, status=DeliveryStatus.FAILED, attempts=8, next_attempt_at=None,
                      last_error="The receiver answered HTTP 500.")
    url = reverse("api:delivery-retry", args=[failed.pk])

    api.force_authenticate(make_user(Role.VIEWER, envs[0]))
    assert api.post(url).status_code == 403
    api.force_authenticate(make_user(Role.OPERATOR, envs[1]))
    assert api.post(url).status_code == 404
    operator = make_user(Role.OPERATOR, envs[0])
    api.force_authenticate(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url)
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["attempts"]) == ("pending", 0)
    assert no_broker == [failed.pk]
    event = AuditEvent.objects.latest("pk")
    assert (event.action, event.actor_id) == ("delivery.retry", operator.pk)
    assert (event.before["status"], event.after["status"]) == ("failed", "pending")

    response = api.post(url)
    assert response.status_code == 409
    assert "Only a failed delivery" in response.json()["error"]["message"]


def test_deliveries_cannot_be_written_directly(api, envs, admin_all):
    item = delivery(channel(envs[0]))
    api.force_authenticate(admin_all)
    url = reverse("api:delivery-detail", args=[item.pk])
    assert api.post(DELIVERIES, {}, format="json").status_code == 405
    assert api.patch(url, {"status": "delivered"}, format="json").status_code == 405
    assert api.delete(url).status_code == 405


def test_the_event_names_are_listed(api, admin_all):
    api.force_authenticate(admin_all)
    response = api.get(reverse("api:notificationchannel-events"))
    assert response.status_code == 200
    names = {row["name"]: row for row in response.json()}
    assert names["job.failed"]["also"] == ["job.finished"]
    assert {"job.succeeded", "job.failed", "job.finished", "approval.requested", "alert.firing", "alert.resolved",
            "test"} <= set(names)
