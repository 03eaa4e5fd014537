"""Helpers of the autoscaling tests: a policy made directly, and a metric reading chosen by the test."""
from ops_portal.autoscaling import measure
from ops_portal.autoscaling.models import ScalingPolicy


def policy(engine, service_name, **fields):
    return ScalingPolicy.objects.create(engine=engine, service_name=service_name, **{
        "min_replicas": 1, "max_replicas": 6, "target": 50.0, "up_cooldown": 0, "down_cooldown": 0, **fields})


class FakeMetric:
    """Stands in for measure.read: returns the value (and replicas) the test sets, counts calls."""

    def __init__(self, monkeypatch, value=None, replicas=None):
        self.value, self.replicas, self.calls = value, replicas, 0
        monkeypatch.setattr(measure, "read", self)

    def __call__(self, policy, service):
        self.calls += 1
        replicas = self.replicas if self.replicas is not None else service.replicas_desired
        return measure.Reading(self.value, replicas=replicas, samples={"t1 (slot 1)": self.value},
                               message="average of 1 task")
