"""Attempting deliveries by calling the task function: signatures a receiver accepts, backoff,
giving up, email, and never sending one delivery twice."""
import json
import logging
import time
from datetime import datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from ops_portal.notifications import signing, tasks
from ops_portal.notifications.choices import DeliveryStatus
from ops_portal.notifications.models import Delivery
from tests.notifications.helpers import SECRET, channel, delivery, receiver_verifies

pytestmark = pytest.mark.django_db


def attempt_when_due(item, timeout=10):
    """Wait until the delivery's next attempt is due, then run the task once, as the worker would."""
    item.refresh_from_db()
    if item.next_attempt_at is not None:
        wait = (item.next_attempt_at - timezone.now()).total_seconds()
        assert wait < timeout
        time.sleep(max(wait, 0))
    tasks.deliver(item.pk)
    item.refresh_from_db()
    return item


def test_a_webhook_arrives_with_a_signature_the_receiver_accepts(envs, receiver):
    server = receiver()
    hook = channel(envs[0], url=server.url())
    item = delivery(hook, event="job.failed", subject="Job 7 failed", payload={"job": 7, "state": "failed"})

    tasks.deliver(item.pk)

    (request,) = server.requests
    assert request["path"] == "/hooks/ops?token=query-token-123"
    headers, body = request["headers"], request["body"]
    assert receiver_verifies(SECRET, headers, body)
    assert not receiver_verifies("another-secret-0123456789", headers, body)
    assert not receiver_verifies(SECRET, headers, body + b" ")
    assert signing.verify(SECRET, headers["X-OpsPortal-Signature"], body)
    assert headers["X-OpsPortal-Event"] == "job.failed"
    assert headers["X-OpsPortal-Delivery"] == str(item.pk)
    assert headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert set(document) == {"event", "environment", "subject", "payload", "delivery_id", "sent_at"}
    assert document["event"] == "job.failed" and document["environment"] == "alpha"
    assert document["subject"] == "Job 7 failed" and document["payload"] == {"job": 7, "state": "failed"}
    assert document["delivery_id"] == item.pk
    sent_at = datetime.fromisoformat(document["sent_at"])
    assert abs(sent_at.timestamp() - int(headers["X-OpsPortal-Signature"].split(",")[0][2:])) < 1
    item.refresh_from_db()
    assert (item.status, item.attempts, item.response_status) == (DeliveryStatus.DELIVERED, 1, 200)
    assert item.delivered_at is not None and item.last_error == "" and item.next_attempt_at is None
    assert item.claimed_until is None


def test_a_receiver_refuses_an_old_or_tampered_signature(envs, receiver):
    server = receiver()
    item = delivery(channel(envs[0], url=server.url()))
    tasks.deliver(item.pk)
    (request,) = server.requests
    headers, body = request["headers"], request["body"]
    signed_at = int(headers["X-OpsPortal-Signature"].split(",")[0][2:])
    assert not receiver_verifies(SECRET, headers, body, now=signed_at + 301)
    assert not signing.verify(SECRET, headers["X-OpsPortal-Signature"], body, now=signed_at + 301)
    assert signing.verify(SECRET, headers["X-OpsPortal-Signature"], body, now=signed_at + 299)
    forged = f"t={signed_at + 1000},v1={headers['X-OpsPortal-Signature'].split('v1=')[1]}"
    assert not signing.verify(SECRET, forged, body, now=signed_at + 1000)
    assert not signing.verify(SECRET, "garbage", body)


def test_a_receiver_that_fails_twice_gets_the_delivery_on_the_third_attempt(envs, receiver, fast_backoff):
    server = receiver([500, 500, 200])
    item = delivery(channel(envs[0], url=server.url()))

    item = attempt_when_due(item)
    assert (item.status, item.attempts, item.response_status) == (DeliveryStatus.PENDING, 1, 500)
    assert item.last_error.startswith("The receiver answered HTTP 500")
    item = attempt_when_due(item)
    assert (item.status, item.attempts) == (DeliveryStatus.PENDING, 2)
    item = attempt_when_due(item)

    assert (item.status, item.attempts, item.response_status) == (DeliveryStatus.DELIVERED, 3, 200)
    assert len(server.requests) == 3
    # Backoff recorded per attempt: base * 2^(n-1) after the n-th failure.
    first, second, third = item.history
    delays = [(datetime.fromisoformat(e["retry_at"]) - datetime.fromisoformat(e["at"])).total_seconds()
              for e in (first, second)]
    assert delays == [pytest.approx(0.2), pytest.approx(0.4)]
    assert [e["response_status"] for e in item.history] == [500, 500, 200]
    assert third["retry_at"] is None and third["error"] == ""
    # The receiver saw the attempts spaced by at least the backoff.
    times = [r["time"] for r in server.requests]
    assert times[1] - times[0] >= 0.2 - 0.05 and times[2] - times[1] >= 0.4 - 0.05
    # Every attempt is signed afresh and carries the same delivery id.
    assert {r["headers"]["X-OpsPortal-Delivery"] for r in server.requests} == {str(item.pk)}
    assert all(receiver_verifies(SECRET, r["headers"], r["body"]) for r in server.requests)


def test_a_failed_attempt_queues_the_next_one_after_commit_with_the_backoff(envs, receiver, settings,
                                                                           django_capture_on_commit_callbacks,
                                                                           monkeypatch):
    settings.NOTIFICATION_BACKOFF_SECONDS = 30
    server = receiver([503])
    item = delivery(channel(envs[0], url=server.url()))
    queued = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, countdown=None, **kw: queued.append(
        (args, countdown)))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliver(item.pk)
    assert queued == [((item.pk,), 30.0)]
    item.refresh_from_db()
    assert 29 <= (item.next_attempt_at - timezone.now()).total_seconds() <= 30


def test_backoff_doubles_and_is_capped(settings):
    from ops_portal.notifications import conf

    settings.NOTIFICATION_BACKOFF_SECONDS = 30
    settings.NOTIFICATION_BACKOFF_MAX_SECONDS = 3600
    assert [conf.backoff_seconds(n) for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_delivery_is_given_up_after_the_last_attempt(envs, receiver, fast_backoff):
    fast_backoff.NOTIFICATION_MAX_ATTEMPTS = 3
    server = receiver([500, 502, 500, 200])
    item = delivery(channel(envs[0], url=server.url()))
    for _ in range(3):
        item = attempt_when_due(item)

    assert (item.status, item.attempts, item.response_status) == (DeliveryStatus.FAILED, 3, 500)
    assert item.next_attempt_at is None
    assert item.last_error.startswith("The receiver answered HTTP 500")
    assert len(item.last_error) <= 500
    # A failed delivery is not attempted again by a stray message or by retry_due.
    tasks.deliver(item.pk)
    assert tasks.retry_due() == 0
    assert len(server.requests) == 3


def test_a_delivered_delivery_is_never_sent_again(envs, receiver):
    server = receiver()
    item = delivery(channel(envs[0], url=server.url()))
    tasks.deliver(item.pk)
    tasks.deliver(item.pk)
    Delivery.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))
    assert tasks.retry_due() == 0
    tasks.deliver(item.pk)
    assert len(server.requests) == 1


def test_a_delivery_held_by_another_worker_is_left_alone(envs, receiver):
    server = receiver()
    item = delivery(channel(envs[0], url=server.url()))
    assert tasks.claim(item.pk) is not None  # another worker is sending it now
    tasks.deliver(item.pk)
    assert server.requests == []
    item.refresh_from_db()
    assert item.status == DeliveryStatus.PENDING and item.attempts == 0


def test_an_early_message_does_not_shortcut_the_backoff(envs, receiver):
    server = receiver()
    item = delivery(channel(envs[0], url=server.url()), next_attempt_at=timezone.now() + timedelta(minutes=5))
    tasks.deliver(item.pk)
    assert server.requests == []


def test_a_deleted_channel_drops_its_pending_deliveries_quietly(envs):
    hook = channel(envs[0])
    item = delivery(hook)
    hook.delete()
    assert tasks.deliver(item.pk) is None


def test_an_unreachable_receiver_is_described_in_plain_words_without_the_url_secrets(envs, receiver, caplog):
    server = receiver()
    port = server.server.server_address[1]
    server.close()  # nothing listens there any more
    item = delivery(channel(envs[0], url=f"http://127.0.0.1:{port}/hook/path-token-abc?token=query-token-123"),
                    payload={"api_key": "payload-secret-value"})
    with caplog.at_level(logging.INFO, logger="ops_portal.notifications"):
        tasks.deliver(item.pk)
    item.refresh_from_db()
    assert item.last_error == f"Could not connect to 127.0.0.1:{port}."
    assert item.status == DeliveryStatus.PENDING and item.response_status is None
    logs = caplog.text
    assert f"http://127.0.0.1:{port}/…?…" in logs
    for secret in ("query-token-123", "path-token-abc", "payload-secret-value", SECRET):
        assert secret not in logs and secret not in item.last_error


def test_a_slow_receiver_times_out(envs, receiver, settings):
    settings.NOTIFICATION_TIMEOUT_SECONDS = 0.3
    server = receiver(delay=1.5)
    item = delivery(channel(envs[0], url=server.url()))
    tasks.deliver(item.pk)
    item.refresh_from_db()
    assert item.status == DeliveryStatus.PENDING and item.attempts == 1
    assert item.last_error == f"No answer from {server.base_url[7:]} within 0.3 s."


def test_redirects_are_not_followed(envs, receiver):
    server = receiver([302])
    item = delivery(channel(envs[0], url=server.url()))
    tasks.deliver(item.pk)
    item.refresh_from_db()
    assert item.status == DeliveryStatus.PENDING and item.response_status == 302
    assert "redirect" in item.last_error
    assert len(server.requests) == 1


def test_email_goes_to_the_channel_recipients(envs):
    mailbox = channel(envs[0], kind="email", emails=["ops@example.com", "oncall@example.com"])
    item = delivery(mailbox, event="job.failed", subject="Job 9 failed", payload={"job": 9, "targets": ["a", "b"]})

    tasks.deliver(item.pk)

    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "oncall@example.com"]
    assert message.subject == "[alpha] Job 9 failed"
    assert "Event:        job.failed (A job failed)" in message.body
    assert "Environment:  alpha" in message.body
    assert "  job: 9" in message.body and '  targets: ["a", "b"]' in message.body
    assert f"delivery {item.pk}" in message.body
    item.refresh_from_db()
    assert (item.status, item.attempts) == (DeliveryStatus.DELIVERED, 1)


def test_an_email_about_many_alerts_lists_them_a_line_each(envs):
    mailbox = channel(envs[0], kind="email", events=["alert.firing"])
    item = delivery(mailbox, event="alert.firing", subject="[critical] 30 alerts firing — boxes", payload={
        "kind": "alert_group", "count": 30, "rule_name": "boxes", "unlisted": 28,
        "alerts": [{"severity": "critical", "summary": "box-1 exited"}, {"severity": "warning", "summary": "box-2"}]})

    tasks.deliver(item.pk)

    (message,) = mail.outbox
    assert "Alerts:\n  - [critical] box-1 exited\n  - [warning] box-2\n  … and 28 more\n" in message.body
    assert "  count: 30" in message.body and "  rule_name: boxes" in message.body
    assert "alerts:" not in message.body  # listed above, not as one line of JSON


def test_a_mail_server_error_is_retried(envs, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # discard port: nothing listens
    item = delivery(channel(envs[0], kind="email"))
    tasks.deliver(item.pk)
    item.refresh_from_db()
    assert item.status == DeliveryStatus.PENDING and item.attempts == 1
    assert item.last_error.startswith("Sending the email failed: ConnectionRefusedError")


def test_a_disabled_channel_gets_nothing_more(envs, receiver):
    server = receiver()
    item = delivery(channel(envs[0], url=server.url(), enabled=False))
    tasks.deliver(item.pk)
    item.refresh_from_db()
    assert item.status == DeliveryStatus.FAILED
    assert item.last_error == "The channel was disabled before the notification was sent."
    assert server.requests == []


def test_retry_due_requeues_overdue_deliveries_once(envs, settings, django_capture_on_commit_callbacks,
                                                   monkeypatch):
    settings.NOTIFICATION_RETRY_GRACE_SECONDS = 60
    hook = channel(envs[0])
    past = timezone.now() - timedelta(minutes=5)
    lost = delivery(hook, next_attempt_at=past)  # its message was lost
    dead_worker = delivery(hook, next_attempt_at=past, claimed_until=timezone.now() - timedelta(seconds=1))
    delivery(hook, next_attempt_at=past, claimed_until=timezone.now() + timedelta(seconds=60))  # in flight
    delivery(hook)  # just queued: its message is still on its way
    delivery(hook, next_attempt_at=timezone.now() + timedelta(minutes=5))  # backing off
    delivery(hook, next_attempt_at=None, status=DeliveryStatus.DELIVERED)
    delivery(hook, next_attempt_at=None, status=DeliveryStatus.FAILED)
    queued = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, countdown=None, **kw: queued.append(args[0]))

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.retry_due() == 2
    assert sorted(queued) == sorted([lost.pk, dead_worker.pk])
    lost.refresh_from_db()
    assert (timezone.now() - lost.next_attempt_at).total_seconds() < 5
    # Within the grace period the same deliveries are not queued again.
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.retry_due() == 0


def test_a_broker_outage_does_not_fail_the_caller(envs, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver, "apply_async", refuse)
    with caplog.at_level(logging.WARNING):
        tasks.enqueue(123)
    assert "retry_due will pick it up" in caplog.text
