from rest_framework import serializers

from ops_portal.accounts.models import Environment
from ops_portal.core.api.fields import VisibleSlugRelatedField

from ..models import Artifact, Credential, Host, HostGroup, Site


class EnvironmentField(VisibleSlugRelatedField):
    def __init__(self, **kwargs):
        super().__init__(slug_field="name", queryset=Environment.objects.all(), **kwargs)


class SiteSerializer(serializers.ModelSerializer):
    queue = serializers.CharField(read_only=True, help_text="The Celery queue of the site's workers.")

    class Meta:
        model = Site
        fields = ["id", "name", "description", "queue", "created"]
        read_only_fields = ["created"]


class CredentialSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    private_key = serializers.CharField(write_only=True, trim_whitespace=False,
                                        style={"base_template": "textarea.html"},
                                        help_text="OpenSSH or PEM private key. Never returned.")
    passphrase = serializers.CharField(write_only=True, required=False, allow_blank=True,
                                       help_text="Never returned.")

    class Meta:
        model = Credential
        fields = ["id", "name", "environment", "username", "private_key", "passphrase", "public_key",
                  "fingerprint", "created", "rotated"]
        read_only_fields = ["public_key", "fingerprint", "created", "rotated"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:  # the key changes only through rotate
            fields.pop("private_key")
            fields.pop("passphrase")
        return fields


class RotateCredentialSerializer(serializers.Serializer):
    private_key = serializers.CharField(write_only=True, trim_whitespace=False)
    passphrase = serializers.CharField(write_only=True, required=False, allow_blank=True)


class HostGroupSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()

    class Meta:
        model = HostGroup
        fields = ["id", "name", "environment", "description", "variables", "created"]
        read_only_fields = ["created"]
        validators = []


class HostSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    credential = VisibleSlugRelatedField(slug_field="name", queryset=Credential.objects.all(),
                                              required=False, allow_null=True)
    groups = VisibleSlugRelatedField(slug_field="name", queryset=HostGroup.objects.all(), many=True,
                                          required=False)
    site = VisibleSlugRelatedField(slug_field="name", queryset=Site.objects.all(), required=False, allow_null=True,
                                   help_text="Where the host is: its jobs run on the workers of queue site.<name>.")

    class Meta:
        model = Host
        fields = ["id", "name", "address", "port", "username", "transport", "environment", "credential", "site",
                  "groups", "tags", "variables", "enabled", "host_key", "offered_host_key", "reachability",
                  "last_seen", "last_error", "created", "updated"]
        read_only_fields = ["offered_host_key", "reachability", "last_seen", "last_error", "created", "updated"]

    def validate(self, attrs):
        groups = attrs.get("groups")
        environment = attrs.get("environment") or getattr(self.instance, "environment", None)
        if groups and environment is not None:
            names = {g.name for g in groups}
            # Group names are unique per environment: resolve them in the host's environment.
            attrs["groups"] = list(HostGroup.objects.filter(environment=environment, name__in=names))
            missing = names - {g.name for g in attrs["groups"]}
            if missing:
                errors = [f"No group {n} in {environment}." for n in sorted(missing)]
                raise serializers.ValidationError({"groups": errors})
        return attrs

    def to_representation(self, host):
        """What ModelSerializer gives for these fields (a test compares the two), without its
        per-field lookups: the hosts list answers up to 1000 of them."""
        fields = self.fields
        when = fields["created"].to_representation
        groups = getattr(host, "group_list", None)  # hosts_for_lists() prefetches them there
        groups = host.groups.all() if groups is None else groups
        return {
            "id": host.pk, "name": host.name, "address": host.address, "port": host.port,
            "username": host.username, "transport": host.transport, "environment": host.environment.name,
            "credential": host.credential.name if host.credential_id else None,
            "site": host.site.name if host.site_id else None,
            "groups": [group.name for group in groups],
            "tags": host.tags, "variables": host.variables,
            "enabled": host.enabled, "host_key": host.host_key, "offered_host_key": host.offered_host_key,
            "reachability": host.reachability, "last_seen": when(host.last_seen) if host.last_seen else None,
            "last_error": host.last_error, "created": when(host.created), "updated": when(host.updated),
        }


class ArtifactSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    archive = serializers.FileField(write_only=True, required=False,
                                    help_text="A .tar.gz release archive.")
    files = serializers.ListField(child=serializers.FileField(), write_only=True, required=False,
                                  help_text="Or the files of a directory (multipart)...")
    paths = serializers.ListField(child=serializers.CharField(max_length=1024), write_only=True, required=False,
                                  help_text="...with each file's path relative to the directory, in the same order.")
    file_count = serializers.IntegerField(source="files", read_only=True)

    class Meta:
        model = Artifact
        fields = ["id", "name", "environment", "archive", "files", "paths", "file_count", "sha256", "size",
                  "uploaded_by", "created"]
        read_only_fields = ["sha256", "size", "uploaded_by", "created"]
        validators = []

    def validate(self, attrs):
        if bool(attrs.get("archive")) == bool(attrs.get("files")):
            raise serializers.ValidationError({"archive": ["Upload either an archive or the files of a directory."]})
        if attrs.get("files") and len(attrs.get("paths") or []) != len(attrs["files"]):
            raise serializers.ValidationError({"paths": ["Give one relative path per uploaded file."]})
        return attrs


class ImportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["csv", "ansible"])
    file = serializers.FileField(required=False)
    content = serializers.CharField(required=False, max_length=2 * 1024 * 1024, trim_whitespace=False)
    environment = serializers.CharField(required=False, help_text="For Ansible inventories, and CSV rows without one.")
    credential = serializers.CharField(required=False, default="", allow_blank=True,
                                       help_text="A credential name for hosts that do not name one.")
    update_existing = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if bool(attrs.get("file")) == bool(attrs.get("content")):
            raise serializers.ValidationError({"file": ["Send a file or the content, not both."]})
        return attrs


class ImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
