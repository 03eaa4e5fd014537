"""Celery tasks of the autoscaling app."""
from celery import shared_task

from . import evaluation


@shared_task(name="autoscaling.tick", ignore_result=True)
def tick():
    """Claim the due evaluations of every enabled policy and send each to a worker."""
    return evaluation.tick()


@shared_task(name="autoscaling.evaluate", ignore_result=True)
def evaluate(evaluation_id):
    """Measure and decide one claimed evaluation (a redelivered task finds it started and does nothing)."""
    evaluation.run(evaluation_id)
