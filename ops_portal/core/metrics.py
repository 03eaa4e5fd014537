"""Prometheus metrics on prometheus_client: counters kept by each process, gauges read at scrape time.

With PROMETHEUS_MULTIPROC_DIR set (several processes on one machine: web and worker under
`make run`, or containers sharing a volume), every process writes its counters to files there
and a scrape sums them (prometheus_client's multiprocess mode); without it, a scrape reads this
process's own registry.
"""
import os
import socket

from celery.signals import task_postrun
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip())

# Chosen here, before the first metric exists (prometheus_client decides on the variable's mere
# presence, so a blank value would write files to the working directory). Containers sharing the
# directory all have pid 1: each process's files are named by host and pid.
values.ValueClass = (
    values.MultiProcessValue(lambda: f"{socket.gethostname().replace('_', '-')}-{os.getpid()}")
    if MULTIPROCESS else values.MutexValue
)
disable_created_metrics()  # no *_created series: the exposition stays what it was before the library

_PROCESS = CollectorRegistry()
_SCRAPE_COLLECTORS = []

HTTP_REQUESTS = Counter("opsportal_http_requests", "HTTP requests served.", ["method", "status"],
                        registry=_PROCESS)
HTTP_SECONDS = Counter("opsportal_http_request_seconds", "Time spent serving HTTP requests.",
                       ["method", "status"], registry=_PROCESS)
TASKS = Counter("opsportal_celery_tasks", "Celery tasks run by workers, by final state.", ["task", "state"],
                registry=_PROCESS)


def observe_request(method, status, seconds):
    labels = (method, f"{status // 100}xx")
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_SECONDS.labels(*labels).inc(seconds)


@task_postrun.connect(weak=False)
def _count_task(sender=None, state=None, **kwargs):
    TASKS.labels(getattr(sender, "name", "unknown"), state or "UNKNOWN").inc()


def register_collector(collector):
    """Add a custom collector (an object with collect() yielding metric families) read at each scrape."""
    _SCRAPE_COLLECTORS.append(collector)
    return collector


def render():
    """The exposition text for one scrape."""
    registry = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(registry)
    else:
        registry.register(_PROCESS)  # a registry is a collector of its own metrics
    for collector in _SCRAPE_COLLECTORS:
        registry.register(collector)
    return generate_latest(registry)
