import json

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ops_portal.core.api.fields import VisiblePrimaryKeyRelatedField
from ops_portal.inventory.api.serializers import EnvironmentField

from .. import actions, slices
from ..models import FreezeWindow, Job, JobSchedule, JobTarget, JobTemplate, MaintenanceWindow, ScheduleRun
from ..schedules import next_run


class ActionSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    target_kind = serializers.CharField()
    description = serializers.CharField()
    mutating = serializers.BooleanField()
    parameters = serializers.ListField(child=serializers.DictField())


class JobTemplateSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    action = serializers.ChoiceField(choices=[])
    selector = serializers.JSONField()
    action_params = serializers.JSONField(required=False)
    parameters = serializers.JSONField(required=False)
    strategy = serializers.JSONField(required=False)

    class Meta:
        model = JobTemplate
        fields = ["id", "name", "description", "environment", "action", "selector", "action_params", "parameters",
                  "strategy", "timeout_seconds", "target_timeout_seconds", "concurrency_limit", "queue", "enabled",
                  "version", "created", "updated"]
        read_only_fields = ["version", "created", "updated"]
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = list(actions.all_actions())


class LaunchSerializer(serializers.Serializer):
    params = serializers.JSONField(required=False, default=dict, help_text="Values for the template's parameters.")
    emergency = serializers.BooleanField(required=False, default=False,
                                         help_text="Run during a freeze (admins; give a reason).")
    emergency_reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    not_before = serializers.DateTimeField(required=False, allow_null=True, default=None,
                                           help_text="Hold the job until then.")
    in_window = serializers.BooleanField(required=False, default=False,
                                         help_text="Hold the job until the environment's next maintenance window.")
    limit = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000,
                                  help_text="Only some of the template's targets: names or shell-style patterns "
                                            "separated by commas (web-1,db-*); empty: all of them.")


class AdhocJobSerializer(LaunchSerializer):
    limit = None  # an ad-hoc job's selector says exactly what it runs on
    environment = EnvironmentField()
    action = serializers.ChoiceField(choices=[])
    selector = serializers.JSONField()
    strategy = serializers.JSONField(required=False, default=None)
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    timeout_seconds = serializers.IntegerField(required=False, default=3600, min_value=1, max_value=7 * 86400)
    target_timeout_seconds = serializers.IntegerField(required=False, default=None, min_value=1, max_value=7 * 86400,
                                                      allow_null=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = list(actions.all_actions())


class JobTargetSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobTarget
        fields = ["index", "kind", "ref_id", "name", "batch", "state", "exit_code", "changed", "started", "finished",
                  "error", "fingerprint", "data"]


class JobSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    template = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)  # ad hoc: null

    class Meta:
        model = Job
        fields = ["id", "name", "template", "template_version", "environment", "action", "state", "params",
                  "strategy", "timeout_seconds", "target_timeout_seconds", "plan_hash", "queue", "emergency",
                  "emergency_reason", "not_before", "created_by_name", "source", "request_id", "relaunch_of",
                  "created", "queued_at", "started", "finished", "worker", "waiting_reason", "cancel_requested",
                  "cancel_requested_by", "targets_total", "targets_done", "targets_failed", "error", "last_seq"]
        read_only_fields = fields


class JobSliceSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    first = serializers.IntegerField(help_text="Index of its first target.")
    last = serializers.IntegerField(help_text="Index after its last target.")
    state = serializers.CharField()
    worker = serializers.CharField()
    targets = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed, timed out or lost targets.")
    error = serializers.CharField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)


class JobDetailSerializer(JobSerializer):
    targets = JobTargetSerializer(many=True, read_only=True)
    slices = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["targets", "slices"]
        read_only_fields = fields

    @extend_schema_field(JobSliceSerializer(many=True))
    def get_slices(self, obj):
        """A sliced job's slices (strategy slices/slice_size) with their counts; [] when not sliced."""
        return JobSliceSerializer(slices.table(obj), many=True).data


class JobEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    kind = serializers.CharField()
    time = serializers.FloatField()
    text = serializers.CharField()
    target = serializers.IntegerField(required=False)
    stream = serializers.CharField(required=False)
    data = serializers.JSONField(required=False)


class FreezeWindowSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()

    class Meta:
        model = FreezeWindow
        fields = ["id", "environment", "starts", "ends", "reason", "created"]
        read_only_fields = ["created"]


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()

    class Meta:
        model = MaintenanceWindow
        fields = ["id", "environment", "name", "weekdays", "start_time", "duration_minutes", "timezone", "created"]
        read_only_fields = ["created"]


class JobScheduleSerializer(serializers.ModelSerializer):
    template = VisiblePrimaryKeyRelatedField(queryset=JobTemplate.objects.all())
    environment = serializers.SlugRelatedField(source="template.environment", slug_field="name", read_only=True)
    params = serializers.JSONField(required=False, default=dict)
    secret_values = serializers.JSONField(required=False, write_only=True,
                                          help_text="Values of secret parameters; stored encrypted, never returned.")
    secrets_set = serializers.SerializerMethodField(help_text="Names of the secret values stored (never returned).")
    next_run = serializers.SerializerMethodField()
    standing_approval = serializers.SerializerMethodField()

    class Meta:
        model = JobSchedule
        fields = ["id", "name", "template", "environment", "params", "secret_values", "secrets_set", "limit", "kind",
                  "cron",
                  "timezone",
                  "interval_seconds", "run_at", "enabled", "missed_policy", "owner_name", "last_run_at", "next_run",
                  "standing_approval", "created", "updated"]
        read_only_fields = ["owner_name", "last_run_at", "created", "updated"]
        validators = []

    def get_secrets_set(self, obj) -> list[str]:
        return sorted(json.loads(obj.secret_params)) if obj.secret_params else []

    def get_next_run(self, obj) -> str | None:
        value = next_run(obj)
        return value.isoformat() if value else None

    def get_standing_approval(self, obj) -> dict | None:
        request = obj.standing_request
        if request is None:
            return None
        return {"id": request.pk, "state": request.state}


class ScheduleRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduleRun
        fields = ["slot", "fired_at", "outcome", "detail", "job"]


class SystemScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    task = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    enabled = serializers.BooleanField(required=False)
    every_seconds = serializers.IntegerField(required=False, min_value=5, max_value=366 * 86400,
                                             source="interval.every")
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    total_run_count = serializers.IntegerField(read_only=True)
