from rest_framework import serializers

from ops_portal.core.api.fields import VisiblePrimaryKeyRelatedField
from ops_portal.inventory.api.serializers import EnvironmentField
from ops_portal.inventory.models import HostGroup
from ops_portal.jobs.models import JobTemplate

from ..choices import STEPS, Metric, SubjectKind
from ..models import Alert, AlertRule

MAX_RANGE_DAYS = 400


class AlertRuleSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    group = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=128,
                                  help_text="A host group of the rule's environment, by name (empty: all hosts).")
    # The name the API had while the runbook was a bare id; the model field is `runbook`.
    runbook_template_id = VisiblePrimaryKeyRelatedField(
        source="runbook", queryset=JobTemplate.objects.all(), required=False, allow_null=True,
        help_text="A job template of the rule's environment to run when it fires (empty: none).")

    class Meta:
        model = AlertRule
        fields = ["id", "name", "environment", "enabled", "kind", "metric", "comparator", "threshold",
                  "clear_threshold", "for_seconds", "severity", "group", "tag", "mount", "name_filter",
                  "runbook_template_id", "description", "created", "updated"]
        read_only_fields = ["created", "updated"]
        extra_kwargs = {
            "kind": {"help_text": "metric (a host metric against a threshold; the default), container_metric "
                                  "(a metric of each container named by name_filter), service_metric (a Swarm "
                                  "service's tasks' average, named by name_filter), program_metric (a metric summed "
                                  "over each program's processes, named by name_filter, on hosts of group/tag), or a "
                                  "state rule: "
                                  "container_not_running, service_short, program_not_running."},
            "metric": {"help_text": "Metric rules: what to watch (host rules: cpu_percent, mem_percent, load1, "
                                    "disk_percent, reachable; container rules: ctr_cpu_percent, ctr_mem_percent, "
                                    "ctr_mem_bytes, ctr_rx_rate, ctr_tx_rate, ctr_blkr_rate, ctr_blkw_rate; "
                                    "service rules: svc_cpu_percent, svc_mem_percent; program rules: "
                                    "prog_cpu_percent, prog_mem_bytes). State rules: "
                                    "empty."},
            "threshold": {"help_text": "Metric rules: the value that fires. State rules: null."},
        }
        validators = []  # the model checks (environment, name) and answers with a field error

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["group"] = instance.group.name if instance.group_id else None
        return data

    def validate(self, attrs):
        if "group" in attrs:
            name = attrs.pop("group") or ""
            environment = attrs.get("environment") or getattr(self.instance, "environment", None)
            group = None
            if name and environment is not None:
                group = HostGroup.objects.filter(environment=environment, name=name).first()
                if group is None:
                    raise serializers.ValidationError({"group": [f"No group {name} in {environment}."]})
            attrs["group"] = group
        return attrs


class AlertSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.name", read_only=True)
    rule_name = serializers.CharField(source="rule.name", read_only=True, default=None)
    runbook_template_id = serializers.IntegerField(source="rule.runbook_id", read_only=True, default=None,
                                                   allow_null=True)
    # Declared: a read-only model field loses allow_blank, and the schema would refuse "" (no subject).
    subject_kind = serializers.ChoiceField(choices=SubjectKind.choices, allow_blank=True, read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "state", "severity", "summary", "source", "key", "environment", "host", "host_name",
                  "subject_kind", "subject_id", "subject_name", "metric", "mount", "value", "threshold", "rule",
                  "rule_name", "runbook_template_id", "fired_at",
                  "acknowledged_at", "acknowledged_by_name", "note", "resolved_at", "resolution"]
        read_only_fields = fields


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, help_text="What you are doing about it.")


class MetricsQuerySerializer(serializers.Serializer):
    host = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    metric = serializers.ChoiceField(choices=Metric.choices)
    since = serializers.DateTimeField(required=False, help_text="ISO 8601; default: 6 hours before `until`.")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601; default: now.")
    step = serializers.ChoiceField(choices=list(STEPS), required=False,
                                   help_text="raw, 5m or 1h; chosen from the range when absent.")

    def validate(self, attrs):
        until, since = attrs.get("until"), attrs.get("since")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"since": ["Must be before until."]})
        if since is not None and until is not None and (until - since).days > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"since": [f"At most {MAX_RANGE_DAYS} days at once."]})
        return attrs


class SeriesSerializer(serializers.Serializer):
    mount = serializers.CharField(help_text="Disk metrics: the mount point; empty otherwise.")
    times = serializers.ListField(child=serializers.IntegerField(), help_text="Unix seconds (bucket starts).")
    values = serializers.ListField(child=serializers.FloatField(), help_text="Samples, or bucket averages.")
    max = serializers.ListField(child=serializers.FloatField(), required=False, help_text="Bucket maxima (rollups).")


class MetricsSerializer(serializers.Serializer):
    host = serializers.IntegerField()
    metric = serializers.CharField()
    step = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    series = SeriesSerializer(many=True)
