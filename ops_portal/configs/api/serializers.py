from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ops_portal.inventory.api.serializers import EnvironmentField

from .. import validation
from ..models import ConfigTemplate, DriftReport


@extend_schema_field(OpenApiTypes.STR)
class ModeField(serializers.Field):
    """Permission bits as an octal string ("0644"); null keeps the file's mode."""

    def to_internal_value(self, data):
        try:
            return validation.parse_mode(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages)

    def to_representation(self, value):
        return validation.format_mode(value)


class ConfigTemplateSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    selector = serializers.JSONField(help_text="Which hosts, as for jobs: names, pattern, groups, tags or all.")
    mode = ModeField(required=False, allow_null=True, help_text='Octal, e.g. "0640"; null keeps the file\'s mode.')
    content = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False,
                                    style={"base_template": "textarea.html"},
                                    help_text="Jinja2 template: group variables, host variables and `host`.")

    class Meta:
        model = ConfigTemplate
        fields = ["id", "name", "description", "environment", "selector", "path", "content", "mode", "owner",
                  "group", "service_action", "sensitive", "enabled", "version", "created", "updated"]
        read_only_fields = ["version", "created", "updated"]
        validators = []  # the model checks (environment, name)

    def validate_content(self, value):
        try:
            return validation.content(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages)

    def validate_owner(self, value):
        return self._posix(value, "owner")

    def validate_group(self, value):
        return self._posix(value, "group")

    def _posix(self, value, what):
        try:
            return validation.posix_name(value, what=what)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages)


class RenderedSerializer(serializers.Serializer):
    config = serializers.IntegerField()
    version = serializers.IntegerField()
    host = serializers.CharField()
    targeted = serializers.BooleanField(help_text="Whether the template's selector picks this host now.")
    path = serializers.CharField()
    mode = serializers.CharField(allow_null=True)
    owner = serializers.CharField()
    group = serializers.CharField()
    content = serializers.CharField()


class ApplySerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(required=False, default=False,
                                       help_text="Show what would change (with diffs); change nothing.")
    hosts = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
                                  allow_empty=False, max_length=5000,
                                  help_text="Only these host ids (default: every host selected).")


class LaunchedJobSerializer(serializers.Serializer):
    """The job that was launched; follow it at /api/jobs/{id}/ or url."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    action = serializers.CharField()
    state = serializers.CharField(read_only=True, help_text="drifted, in sync or unknown")
    environment = serializers.CharField(source="environment.name")
    params = serializers.JSONField()
    targets_total = serializers.IntegerField()
    approval_request = serializers.IntegerField(source="approval_request_id", allow_null=True)
    created = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, job) -> str:
        return f"/jobs/{job.pk}/"


class DriftReportSerializer(serializers.ModelSerializer):
    config_name = serializers.CharField(source="config.name", read_only=True)
    path = serializers.CharField(source="config.path", read_only=True)
    host_name = serializers.CharField(source="host.name", read_only=True)
    environment = serializers.CharField(source="config.environment.name", read_only=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)

    class Meta:
        model = DriftReport
        fields = ["id", "config", "config_name", "config_version", "path", "host", "host_name", "environment",
                  "drifted", "state", "changes", "diff", "error", "checked", "drifted_since", "job", "alerted"]
        read_only_fields = fields
