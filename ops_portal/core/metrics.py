"""Prometheus text exposition: process counters plus gauges collected at scrape time."""
import threading
from collections import defaultdict

_lock = threading.Lock()
_requests = defaultdict(int)
_durations = defaultdict(float)
_collectors = []


def observe_request(method, status, seconds):
    key = (method, f"{status // 100}xx")
    with _lock:
        _requests[key] += 1
        _durations[key] += seconds


def register_collector(func):
    """Register func() -> iterable of (name, help, type, [(labels dict, value)])."""
    _collectors.append(func)
    return func


def _labels(labels):
    if not labels:
        return ""
    inner = ",".join(
        f'{key}="{str(value).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in sorted(labels.items())
    )
    return "{" + inner + "}"


def render():
    lines = []

    def family(name, help_text, kind, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(labels)} {value}")

    with _lock:
        requests = dict(_requests)
        durations = dict(_durations)
    family(
        "opsportal_http_requests_total", "HTTP requests served by this process.", "counter",
        [({"method": m, "status": s}, n) for (m, s), n in sorted(requests.items())],
    )
    family(
        "opsportal_http_request_seconds_total", "Time spent serving HTTP requests.", "counter",
        [({"method": m, "status": s}, round(v, 6)) for (m, s), v in sorted(durations.items())],
    )
    for collector in _collectors:
        for name, help_text, kind, samples in collector():
            family(name, help_text, kind, samples)
    return "\n".join(lines) + "\n"
