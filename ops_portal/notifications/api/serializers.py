from rest_framework import serializers

from ops_portal.inventory.api.serializers import EnvironmentField

from .. import registry
from ..models import MAX_EMAILS, Delivery, NotificationChannel


class SecretField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(write_only=True, min_length=16, max_length=256, trim_whitespace=False, **kwargs)


class NotificationChannelSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    secret = SecretField(required=False, help_text="HMAC key for webhook signatures; generated when not "
                                                   "given. Never returned: use rotate-secret to get a new one.")
    emails = serializers.ListField(child=serializers.EmailField(), required=False, max_length=MAX_EMAILS)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, max_length=50,
                                   help_text="Names from GET /api/notification-channels/events/.")

    class Meta:
        model = NotificationChannel
        fields = ["id", "name", "environment", "kind", "url", "secret", "emails", "events", "enabled",
                  "secret_rotated", "created"]
        read_only_fields = ["secret_rotated", "created"]
        validators = []  # the model checks (environment, name) and answers with a field error

    def validate_secret(self, value):
        if self.instance is not None:
            raise serializers.ValidationError("Change the secret with the rotate-secret action.")
        return value

    def validate_events(self, value):
        unknown = [name for name in value if not registry.is_registered(name)]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown events: {', '.join(unknown[:10])}. Known: {', '.join(registry.all_events())}.")
        return list(dict.fromkeys(value))


class RotateSecretSerializer(serializers.Serializer):
    secret = SecretField(required=False, help_text="The new secret; generated when not given.")


class RotatedSecretSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    secret = serializers.CharField(help_text="Shown this once: store it in the receiver now.")
    secret_rotated = serializers.DateTimeField()


class NotificationEventSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    also = serializers.ListField(child=serializers.CharField(), help_text="Subscribers of these get it too.")


class DeliverySerializer(serializers.ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True)
    environment = serializers.CharField(source="environment_name", read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "channel", "channel_name", "environment", "event", "subject", "payload", "status",
                  "attempts", "next_attempt_at", "last_error", "response_status", "history", "created",
                  "delivered_at"]
        read_only_fields = fields
