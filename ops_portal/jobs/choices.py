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
# Not started yet: a cancel ends these at once.
WAITING_STATES = frozenset({JobState.PENDING_APPROVAL, JobState.QUEUED})
# Ran and did not succeed (notified as job.failed).
FAILED_STATES = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.LOST})

# Every allowed state change. JobState transitions happen only in lifecycle.transition().
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
# The ends a runner gives a target: reaching one counts the target done once (a rolled-back
# target was counted when it succeeded; a lost one is marked by the reaper, not counted).
TARGET_ENDED = TARGET_DONE - {TargetState.ROLLED_BACK, TargetState.LOST}
# A target in one of these counts as failed (in the job's counters and its failure threshold).
TARGET_FAILED = frozenset({TargetState.FAILED, TargetState.TIMED_OUT})
# Any of these makes the job end failed.
TARGET_FAILS_JOB = TARGET_FAILED | {TargetState.ROLLED_BACK}
# Not started, or started and not ended: what a runner error or a lost worker leaves behind.
TARGET_UNFINISHED = frozenset({TargetState.PENDING, TargetState.RUNNING})


class SliceState(models.TextChoices):
    """A slice of a sliced job (JobSlice): queued for a worker, running, ended, or lost with its worker."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    LOST = "lost", "Lost (worker died)"


SLICE_UNFINISHED = frozenset({SliceState.QUEUED, SliceState.RUNNING})


class WaitingKind(models.TextChoices):
    """Why a queued job does not run yet (its waiting_reason says it in words)."""

    NONE = "", "Not waiting"
    HELD = "held", "Held until a maintenance window"
    FROZEN = "frozen", "Held by a freeze"
    CONCURRENCY = "concurrency", "Too many jobs of its template run"
    LEASE = "lease", "A target is leased by another job"


# Waits that end at a known time: the job's task is sent again for then.
TIMED_WAITS = frozenset({WaitingKind.HELD, WaitingKind.FROZEN})
# Waits that end when another job ends: the dispatcher tries them again.
RETRIED_WAITS = frozenset({WaitingKind.CONCURRENCY, WaitingKind.LEASE})


class StrategyKind(models.TextChoices):
    PARALLEL = "parallel", "All targets in parallel (bounded)"
    ROLLING = "rolling", "Rolling batches"


class EventKind(models.TextChoices):
    OUTPUT = "output", "Output line"
    STATE = "state", "Job state"
    TARGET = "target", "Target state"
    INFO = "info", "Runner message"
