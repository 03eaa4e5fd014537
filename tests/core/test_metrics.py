"""/metrics: one process's registry by default; with PROMETHEUS_MULTIPROC_DIR, the sum over processes."""
import os
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT
from tests.live import start_web, start_worker, wait_for


def samples(text):
    """{(sample name, sorted labels): value} of an exposition text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def in_process(code, environment):
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.django_db
def test_one_process_exposes_its_own_counters_and_scrape_time_gauges(client):
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    found = samples(body)
    assert found[("opsportal_http_requests_total", (("method", "GET"), ("status", "2xx")))] >= 1
    assert found[("opsportal_http_request_seconds_total", (("method", "GET"), ("status", "2xx")))] > 0
    assert ("opsportal_workers_alive", ()) in found and ("opsportal_beat_alive", ()) in found
    assert "_created" not in body  # the same series as before the library


def test_several_processes_add_up_in_the_multiprocess_directory(tmp_path):
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    count = "from ops_portal.core import metrics; metrics.observe_request('POST', {status}, 0.25)"
    in_process(count.format(status=201), environment)
    in_process(count.format(status=204), environment)
    in_process(count.format(status=503), environment)
    found = samples(in_process("from ops_portal.core import metrics; print(metrics.render().decode())", environment))
    assert found[("opsportal_http_requests_total", (("method", "POST"), ("status", "2xx")))] == 2
    assert found[("opsportal_http_requests_total", (("method", "POST"), ("status", "5xx")))] == 1
    assert found[("opsportal_http_request_seconds_total", (("method", "POST"), ("status", "2xx")))] == 0.5


@pytest.mark.live
def test_the_web_metrics_include_the_tasks_a_worker_ran(live_env, live_logs, tmp_path):
    """A real worker and a real web process sharing the directory, as `make run` starts them."""
    from ops_portal.core.tasks import ping

    environment = {**live_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    worker = start_worker(environment, live_logs, name="metrics", concurrency=1, queues="metrics-test")
    web = None
    try:
        web = start_web(environment, live_logs, name="web-metrics")
        ping.apply_async(args=(0, "metrics-test"), queue="metrics-test")
        key = ("opsportal_celery_tasks_total", (("state", "SUCCESS"), ("task", "core.ping")))

        def scraped():
            try:
                return samples(requests.get(web.url + "/metrics", timeout=2).text).get(key, 0)
            except requests.RequestException:
                return 0

        wait_for(lambda: scraped() >= 1, 60, "the worker's ping in the web's /metrics", web)
        found = samples(requests.get(web.url + "/metrics", timeout=5).text)
        assert found[("opsportal_http_requests_total", (("method", "GET"), ("status", "2xx")))] >= 1
    finally:
        if web is not None:
            web.stop()
        worker.stop()
