"""The Celery application: Redis broker, tasks from every app, heartbeats for health and reaping."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ops_portal.settings")

app = Celery("ops_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _start_worker_heartbeat(sender, **kwargs):
    # ops_portal/__init__ imports this module before Django is set up; heartbeat needs settings.
    from ops_portal.core import heartbeat  # noqa: PLC0415

    # The queues it consumes: a job page can then say "no worker takes queue X" (sender: the consumer).
    heartbeat.start("worker", sender.hostname, queues=sorted(sender.app.amqp.queues.consume_from))


@signals.worker_process_init.connect
@signals.worker_ready.connect
def _start_warm_ssh(**kwargs):
    # Each process that runs jobs (prefork children; the main process of solo/threads pools)
    # keeps its own warm SSH connections and closes them when a credential or host changes.
    from ops_portal.inventory import warm  # noqa: PLC0415 — see above

    warm.configure()
    if warm.WARM.enabled:
        warm.start_listener()


@signals.beat_init.connect
def _start_beat_heartbeat(sender, **kwargs):
    from ops_portal.core import heartbeat  # noqa: PLC0415 — see above

    heartbeat.start("beat", "beat")


@signals.worker_shutting_down.connect
def _stop_worker_heartbeat(sender, **kwargs):
    from ops_portal.core import heartbeat  # noqa: PLC0415 — see above

    heartbeat.stop()
