from django.db import models


class RequestState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    INVALIDATED = "invalidated", "Invalidated (the plan changed)"
    WITHDRAWN = "withdrawn", "Withdrawn"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class TimeoutOutcome(models.TextChoices):
    REJECT = "reject", "Reject"
    APPROVE = "approve", "Approve"


class ScheduleMode(models.TextChoices):
    STANDING = "standing", "Approve the schedule once (re-approved when it changes)"
    PER_RUN = "per_run", "Approve every run"
