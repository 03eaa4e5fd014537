"""The HTTP metric against a real server on 127.0.0.1: a number as text or JSON under a key; errors
are words on the evaluation, never an exception."""
import http.server
import threading

import pytest

from ops_portal.autoscaling.measure import parse_metric, read_http
from ops_portal.autoscaling.models import ScalingPolicy


@pytest.fixture
def server():
    answers = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            status, text = answers.get(self.path, (404, "no"))
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers
    httpd.shutdown()


def test_parse_metric_reads_text_and_json_and_refuses_the_rest():
    assert parse_metric(" 42.5\n") == 42.5
    assert parse_metric('{"queue": {"depth": 7}}', "queue.depth") == 7.0
    for text, key in (("NaN", ""), ('{"a": "x"}', "a"), ('{"a": 1}', "b"), ("<html>", ""), ("true", "")):
        with pytest.raises(ValueError):
            parse_metric(text, key)


def test_read_http_gets_the_number_or_says_why_not(server):
    base, answers = server
    answers.update({"/n": (200, "12"), "/j": (200, '{"load": {"now": 3.5}}'), "/bad": (500, "oops"),
                    "/big": (200, "1" * 70000)})
    assert read_http(ScalingPolicy(metric="http", metric_url=f"{base}/n")).value == 12.0
    assert read_http(ScalingPolicy(metric="http", metric_url=f"{base}/j", metric_key="load.now")).value == 3.5
    bad = read_http(ScalingPolicy(metric="http", metric_url=f"{base}/bad"))
    assert bad.value is None and "HTTP 500" in bad.message
    assert "64 KiB" in read_http(ScalingPolicy(metric="http", metric_url=f"{base}/big")).message
    closed = read_http(ScalingPolicy(metric="http", metric_url="http://127.0.0.1:9/"))
    assert closed.value is None and "could not be read" in closed.message
