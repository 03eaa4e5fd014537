from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator, validate_email
from django.db import models
from django.db.models import Q

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.core.crypto import EncryptedTextField

from . import registry
from .choices import ChannelKind, DeliveryStatus

MAX_EMAILS = 50
name_validator = RegexValidator(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?\Z",
    "Use letters, digits, dots, hyphens and underscores (1-128 characters).",
)
webhook_url_validator = URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")


def validate_emails(value):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give the recipients as a list of email addresses.")
    if len(value) > MAX_EMAILS:
        raise ValidationError(f"At most {MAX_EMAILS} recipients.")
    bad = []
    for address in value:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        raise ValidationError(f"Not valid email addresses: {', '.join(bad[:10])}.")


def validate_events(value):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give the events as a list of event names.")
    unknown = [name for name in value if not registry.is_registered(name)]
    if unknown:
        known = ", ".join(registry.all_events())
        raise ValidationError(f"Unknown events: {', '.join(unknown[:10])}. Known: {known}.")


class NotificationChannel(models.Model):
    """Where notifications of an environment go: a signed webhook or a list of email addresses."""

    name = models.CharField(max_length=128, validators=[name_validator])
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="notification_channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    url = models.URLField(max_length=2000, blank=True, validators=[webhook_url_validator],
                          help_text="Webhooks: the URL the portal POSTs to.")
    # Signs webhook bodies (HMAC-SHA256); encrypted at rest, never returned after it is set.
    secret = EncryptedTextField()
    secret_rotated = models.DateTimeField(null=True, blank=True, editable=False)
    emails = models.JSONField(default=list, blank=True, validators=[validate_emails],
                              help_text="Email channels: the recipients.")
    events = models.JSONField(default=list, validators=[validate_events],
                              help_text="The notification events this channel receives.")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "name"], name="notificationchannel_unique_name"),
        ]

    def __str__(self):
        return f"{self.environment.name}/{self.name}" if self.environment_id else self.name

    def clean(self):
        if self.kind == ChannelKind.WEBHOOK and not self.url:
            raise ValidationError({"url": "A webhook channel needs a URL."})
        if self.kind == ChannelKind.EMAIL and not self.emails:
            raise ValidationError({"emails": "An email channel needs at least one recipient."})
        if isinstance(self.events, list) and not self.events:
            raise ValidationError({"events": "Choose at least one event."})
        if isinstance(self.events, list):
            self.events = list(dict.fromkeys(self.events))
        if isinstance(self.emails, list):
            self.emails = list(dict.fromkeys(self.emails))

    def receives(self, event):
        return bool(registry.subscriptions_for(event) & set(self.events))


class Delivery(models.Model):
    """One notification on its way to one channel: attempted by a worker until it lands or we give up."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64, db_index=True)
    # A copy of the environment's name at the time of the event.
    environment_name = models.CharField(max_length=63)
    subject = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    # Set by callers that may announce the same thing twice; one delivery per channel and key.
    dedupe_key = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # While a worker is sending, later than now: another worker leaves the delivery alone.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # One entry per attempt: when, the answer, the error, when the next try is due.
    history = models.JSONField(default=list, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "channel__environment"
    audit_exclude = ("payload", "history", "claimed_until")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["channel", "-created"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["channel", "event", "dedupe_key"], condition=~Q(dedupe_key=""),
                                    name="delivery_unique_dedupe_key"),
        ]

    def __str__(self):
        return f"{self.event} #{self.pk}"
