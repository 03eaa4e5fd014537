from django.db import models


class JobState(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Waiting for approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"
    LOST = "lost", "Lost (worker died)"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Approval expired"


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.TIMED_OUT,
                             JobState.LOST, JobState.REJECTED, JobState.EXPIRED})
ACTIVE_STATES = frozenset({JobState.PENDING_APPROVAL, JobState.QUEUED, JobState.RUNNING})

# Every allowed state change. JobState transitions happen only in services.transition().
TRANSITIONS = {
    JobState.PENDING_APPROVAL: {JobState.QUEUED, JobState.REJECTED, JobState.EXPIRED, JobState.CANCELED},
    JobState.QUEUED: {JobState.RUNNING, JobState.CANCELED, JobState.PENDING_APPROVAL},
    JobState.RUNNING: {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.TIMED_OUT, JobState.LOST},
}


class TargetState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELED = "canceled", "Canceled"
    TIMED_OUT = "timed_out", "Timed out"
    ROLLED_BACK = "rolled_back", "Rolled back"
    LOST = "lost", "Lost"


TARGET_DONE = frozenset({TargetState.OK, TargetState.FAILED, TargetState.SKIPPED, TargetState.CANCELED,
                         TargetState.TIMED_OUT, TargetState.ROLLED_BACK, TargetState.LOST})


class StrategyKind(models.TextChoices):
    PARALLEL = "parallel", "All targets in parallel (bounded)"
    ROLLING = "rolling", "Rolling batches"


class EventKind(models.TextChoices):
    OUTPUT = "output", "Output line"
    STATE = "state", "Job state"
    TARGET = "target", "Target state"
    INFO = "info", "Runner message"
