from rest_framework import serializers

from ops_portal.containers.api.serializers import EngineField
from ops_portal.inventory.api.serializers import EnvironmentField

from ..models import MAX_LABELS, HealingEvent, HealingPolicy


class HealingPolicySerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    engine = EngineField(required=False, allow_null=True,
                         help_text="Only containers of this engine (id or name); null: every engine.")
    label_selector = serializers.DictField(
        child=serializers.CharField(max_length=255, allow_blank=True), required=False,
        help_text=f'Only containers with these labels (at most {MAX_LABELS}): {{"app": "web"}}; "" matches any '
                  "value.")

    class Meta:
        model = HealingPolicy
        fields = ["id", "name", "environment", "description", "engine", "label_selector", "container_name", "action",
                  "on_exit", "on_unhealthy", "heal_clean_exit", "backoff_seconds", "backoff_max_seconds",
                  "max_attempts", "window_seconds", "stable_seconds", "enabled", "created", "updated"]
        read_only_fields = ["created", "updated"]
        validators = []

    def validate_label_selector(self, value):
        if len(value) > MAX_LABELS:
            raise serializers.ValidationError(f"At most {MAX_LABELS} labels.")
        if any(not key or len(key) > 255 or "\x00" in key for key in value):
            raise serializers.ValidationError("Label names are 1-255 characters.")
        return value


class HealingEventSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    engine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    job_state = serializers.CharField(source="job.state", read_only=True, default=None)
    action = serializers.CharField(read_only=True, help_text="restart or recreate; empty until a policy was chosen.")

    class Meta:
        model = HealingEvent
        fields = ["id", "environment", "engine", "container", "docker_id", "container_name", "policy", "policy_name",
                  "trigger", "exit_code", "state", "action", "reason", "attempt", "delay_seconds", "not_before", "job",
                  "job_state", "created", "decided"]
        read_only_fields = fields
