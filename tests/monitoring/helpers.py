"""Samples and rules for monitoring tests: each helper makes exactly what it says."""
from ops_portal.core.context import Actor
from ops_portal.monitoring import metrics, services
from ops_portal.monitoring.models import Alert

T0 = 1_800_000_000  # a fixed "now" for tests of time series (2027-01-15), a multiple of 3600


def series_values(host, metric, values, *, start, every=60, mount=""):
    """Store one sample per value, `every` seconds apart from `start`; returns the last time."""
    at = start
    for value in values:
        metrics.store([(host.pk, at, [(metric, mount, float(value))])])
        at += every
    return at - every


def rule(environment, **fields):
    fields.setdefault("name", f"rule-{fields.get('metric', 'cpu_percent')}")
    fields.setdefault("metric", "cpu_percent")
    fields.setdefault("threshold", 90)
    return services.create_rule(Actor.system(), environment=environment, **fields)


def open_alerts(**filters):
    return list(Alert.objects.filter(state__in=("firing", "acknowledged"), **filters))
