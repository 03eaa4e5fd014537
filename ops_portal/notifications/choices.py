from django.db import models


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook (signed HTTP POST)"
    EMAIL = "email", "Email"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
