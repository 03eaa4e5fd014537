from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.inventory.models import name_validator

from .choices import Decision, RequestState, ScheduleMode, TimeoutOutcome


class ApprovalPolicy(models.Model):
    """When work needs approval, and how much. A policy matches when every condition it sets
    holds; several matching policies combine and the strictest wins."""

    name = models.CharField(max_length=128, validators=[name_validator])
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="approval_policies")
    enabled = models.BooleanField(default=True)
    # Conditions (empty = any). all_work: every job in the environment ("production always").
    all_work = models.BooleanField(default=False)
    templates = models.JSONField(default=list, blank=True, help_text="Template names.")
    actions = models.JSONField(default=list, blank=True, help_text="Action names, e.g. host.deploy.")
    risks = models.JSONField(default=list, blank=True, help_text="Risk tags, e.g. scale_to_zero, remove.")
    min_targets = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="Matches when a job has more targets than this.")
    # Requirement.
    approvals_required = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1),
                                                                                 MaxValueValidator(10)])
    timeout_minutes = models.PositiveIntegerField(default=24 * 60, validators=[MinValueValidator(1),
                                                                               MaxValueValidator(60 * 24 * 30)])
    timeout_outcome = models.CharField(max_length=8, choices=TimeoutOutcome.choices, default=TimeoutOutcome.REJECT)
    schedule_mode = models.CharField(max_length=10, choices=ScheduleMode.choices, default=ScheduleMode.STANDING)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_prefix = "approvalpolicy"

    class Meta:
        ordering = ["environment__name", "name"]
        verbose_name_plural = "approval policies"
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="approvalpolicy_unique_name")]

    def __str__(self):
        return self.name


class ApprovalRequest(models.Model):
    """A request to approve one exact plan. It knows its subject only by type and id."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="approval_requests")
    subject_type = models.CharField(max_length=32)  # "job", "schedule"
    subject_id = models.BigIntegerField()
    title = models.CharField(max_length=200)
    plan = models.JSONField(default=dict)  # what approvers see and approve
    plan_hash = models.CharField(max_length=64)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    requested_by_name = models.CharField(max_length=150, blank=True)
    required = models.PositiveSmallIntegerField(default=1)
    policies = models.JSONField(default=list, blank=True)  # names of the policies that asked for it
    state = models.CharField(max_length=12, choices=RequestState.choices, default=RequestState.PENDING,
                             db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    timeout_outcome = models.CharField(max_length=8, choices=TimeoutOutcome.choices, default=TimeoutOutcome.REJECT)
    reason = models.CharField(max_length=500, blank=True)  # why it ended, in words
    created = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self):
        return f"approval #{self.pk}: {self.title}"

    @property
    def approvals(self):
        return self.decisions.filter(decision=Decision.APPROVE).count()


class ApprovalDecision(models.Model):
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=150)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True, max_length=4000)
    created = models.DateTimeField(auto_now_add=True)

    environment_path = "request__environment"

    class Meta:
        ordering = ["created"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="approvaldecision_once_per_user")]

    def __str__(self):
        return f"{self.user_name} {self.decision}d #{self.request_id}"


class ApprovalComment(models.Model):
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    user_name = models.CharField(max_length=150)
    text = models.TextField(max_length=4000)
    created = models.DateTimeField(auto_now_add=True)

    environment_path = "request__environment"

    class Meta:
        ordering = ["created"]

    def __str__(self):
        return f"{self.user_name} on #{self.request_id}"


class ApprovalLink(models.Model):
    """A one-time signed link to a request, sent in notifications."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="links")
    nonce = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.CharField(max_length=150, blank=True)

    def __str__(self):
        return f"link for #{self.request_id}"
