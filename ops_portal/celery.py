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


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(sender=None, **kwargs):
    # CELERY_DB_REUSE_MAX keeps a task's database connection for the next one; as between web
    # requests, one past CONN_MAX_AGE or broken is closed (the next use opens a new one). Not
    # for a task applied in the caller's process (apply()): its connection is the caller's.
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections  # noqa: PLC0415 — see above

    close_old_connections()


@signals.beat_init.connect
def _start_beat_heartbeat(sender, **kwargs):
    from ops_portal.core import heartbeat  # noqa: PLC0415 — see above

    heartbeat.start("beat", "beat")


@signals.worker_shutting_down.connect
def _stop_worker_heartbeat(sender, **kwargs):
    from ops_portal.core import heartbeat  # noqa: PLC0415 — see above

    heartbeat.stop()
