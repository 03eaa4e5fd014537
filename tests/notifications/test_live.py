"""End to end through a real Celery worker: notify() in a transaction, the worker signs and sends;
a delivery whose message was lost is recovered by retry_due."""
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from ops_portal.notifications import tasks
from ops_portal.notifications.choices import DeliveryStatus
from ops_portal.notifications.models import Delivery
from ops_portal.notifications.services import notify
from tests import factories
from tests.helpers import wait_until
from tests.notifications.helpers import SECRET, channel, delivery, receiver_verifies

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_worker_delivers_a_committed_notification(receiver, live_worker):
    server = receiver()
    env = factories.environment("alpha")
    channel(env, url=server.url(), events=["job.finished"])
    mailbox = channel(env, kind="email", events=["job.succeeded"])

    with transaction.atomic():
        hook_delivery, mail_delivery = notify("job.succeeded", environment=env, subject="Job 11 succeeded",
                                              payload={"job": 11})

    (request,) = server.wait_for(1)
    assert receiver_verifies(SECRET, request["headers"], request["body"])
    assert request["headers"]["X-OpsPortal-Delivery"] == str(hook_delivery.pk)
    for item in (hook_delivery, mail_delivery):
        done = wait_until(lambda item=item: Delivery.objects.filter(pk=item.pk, status=DeliveryStatus.DELIVERED)
                          .first(), what=f"delivery {item.pk} delivered")
        assert done.attempts == 1
    assert mail_delivery.channel_id == mailbox.pk


def test_a_lost_message_is_recovered_by_retry_due(receiver, live_worker, settings):
    settings.NOTIFICATION_RETRY_GRACE_SECONDS = 0
    server = receiver()
    env = factories.environment("alpha")
    # Stored, but its message never reached the broker (or a worker died holding it).
    item = delivery(channel(env, url=server.url()), next_attempt_at=timezone.now() - timedelta(minutes=2),
                    claimed_until=timezone.now() - timedelta(seconds=1))

    assert tasks.retry_due() == 1

    server.wait_for(1)
    done = wait_until(lambda: Delivery.objects.filter(pk=item.pk, status=DeliveryStatus.DELIVERED).first(),
                      what="the recovered delivery delivered")
    assert done.attempts == 1 and len(server.requests) == 1


def test_a_worker_fans_out_and_delivers_many_notifications_committed_at_once(receiver, live_worker):
    from ops_portal.notifications.services import notify_many

    server = receiver()
    env = factories.environment("alpha")
    channel(env, url=server.url(), events=["alert.firing"])
    with transaction.atomic():
        made = notify_many("alert.firing", environment=env, notices=[
            (f"Alert {n}", {"alert": n}, f"alert:{n}") for n in range(12)])

    requests = server.wait_for(12, timeout=90)
    assert sorted(int(r["headers"]["X-OpsPortal-Delivery"]) for r in requests) == sorted(d.pk for d in made)
    wait_until(lambda: Delivery.objects.filter(pk__in=[d.pk for d in made], status=DeliveryStatus.DELIVERED).count()
               == 12, what="12 deliveries delivered")
