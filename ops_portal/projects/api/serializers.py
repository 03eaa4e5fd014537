from rest_framework import serializers

from ops_portal.inventory.api.serializers import EnvironmentField
from ops_portal.jobs.models import Job

from ..models import Project

OBSERVED = ["deploy_key_fingerprint", "state", "revision", "synced_at", "last_error", "created", "updated"]


class ProjectSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    deploy_key = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False,
                                       max_length=20000, style={"base_template": "textarea.html"},
                                       help_text="SSH private key (no passphrase). Stored encrypted, never returned; "
                                                 "empty keeps the stored key.")
    remove_deploy_key = serializers.BooleanField(write_only=True, required=False, default=False,
                                                 help_text="Forget the stored deploy key.")
    deploy_key_set = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "description", "environment", "kind", "path", "url", "branch", "deploy_key",
                  "remove_deploy_key", "deploy_key_set", *OBSERVED]
        read_only_fields = OBSERVED
        validators = []  # the model checks (environment, name) after the permission decision

    def get_deploy_key_set(self, project) -> bool:
        return bool(project.deploy_key)

    def validate(self, attrs):
        if self.instance is None:
            attrs.pop("remove_deploy_key", None)
        elif not attrs.get("remove_deploy_key"):
            attrs.pop("remove_deploy_key", None)
        return attrs


class SyncJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "name", "state", "action", "created"]
