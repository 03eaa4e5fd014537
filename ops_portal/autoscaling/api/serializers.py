from rest_framework import serializers

from ops_portal.containers.api.serializers import EngineField

from ..models import Evaluation, ScalingPolicy

OBSERVED = ["created", "updated"]


class ScalingPolicySerializer(serializers.ModelSerializer):
    engine = EngineField(help_text="The Swarm manager the service runs on (engine id or name).")
    environment = serializers.CharField(source="engine.environment.name", read_only=True)
    service_name = serializers.CharField(max_length=255, help_text="The Swarm service, by name.")
    target = serializers.FloatField(required=False, allow_null=True, min_value=0.001, max_value=1e12)
    scale_up_above = serializers.FloatField(required=False, allow_null=True, min_value=-1e12, max_value=1e12)
    scale_down_below = serializers.FloatField(required=False, allow_null=True, min_value=-1e12, max_value=1e12)

    class Meta:
        model = ScalingPolicy
        fields = ["id", "engine", "environment", "service_name", "description", "enabled", "min_replicas",
                  "max_replicas", "metric", "metric_url", "metric_key", "metric_total", "mode", "target", "tolerance",
                  "scale_up_above", "scale_down_below", "max_step_up", "max_step_down", "up_cooldown",
                  "down_cooldown", "interval", "approval_above", *OBSERVED]
        read_only_fields = OBSERVED
        validators = []  # (engine, service_name) is checked by the model after the permission decision


class EvaluationSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="policy.service_name", read_only=True)
    engine = serializers.CharField(source="policy.engine.name", read_only=True)
    environment = serializers.CharField(source="policy.engine.environment.name", read_only=True)
    job_url = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = ["id", "policy", "service", "engine", "environment", "key", "created", "started", "finished",
                  "outcome", "metric", "value", "samples", "current_replicas", "desired_replicas", "reason", "job",
                  "job_url", "requested_by"]
        read_only_fields = fields

    def get_job_url(self, evaluation) -> str | None:
        return f"/jobs/{evaluation.job_id}/" if evaluation.job_id else None
