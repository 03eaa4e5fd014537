from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ops_portal.core.api.fields import VisibleOnlyMixin, VisibleSlugRelatedField
from ops_portal.inventory.api.serializers import EnvironmentField
from ops_portal.inventory.models import Host, Site
from ops_portal.jobs import strategy as strategies

from ..choices import CONTAINER_OPERATIONS
from ..models import AllowedHostPath, Container, Engine, Image, Network, Node, Service, Stack, Task, Volume


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class EngineField(VisibleOnlyMixin, serializers.RelatedField):
    """An engine the user may see, by id or by name (names are unique per environment: a name two
    visible environments share must be given as the id)."""

    default_error_messages = {"missing": "No engine {value} that you may see.",
                              "ambiguous": "Several engines are named {value}: give its id.",
                              "invalid": "Give an engine's id or name."}

    def __init__(self, **kwargs):
        super().__init__(queryset=Engine.objects.select_related("environment", "host"), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str) or (isinstance(data, str) and len(data) > 128):
            self.fail("invalid")
        queryset = self.get_queryset()
        found = list(queryset.filter(pk=data)[:1]) if isinstance(data, int) or str(data).isdigit() else []
        if not found:
            found = list(queryset.filter(name=str(data))[:2])
        if len(found) > 1:
            self.fail("ambiguous", value=data)
        if not found:
            self.fail("missing", value=data)
        return found[0]

    def to_representation(self, value):
        return value.name


OBSERVED = ["state", "error", "version", "api_version", "os", "swarm_role", "swarm_node_id", "info", "last_seen",
            "last_sync", "created", "updated"]


class EngineSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    host = VisibleSlugRelatedField(slug_field="name", queryset=Host.objects.all(), required=False, allow_null=True,
                                   help_text="The inventory host it runs on (SSH engines are reached through it).")
    site = VisibleSlugRelatedField(slug_field="name", queryset=Site.objects.all(), required=False, allow_null=True,
                                   help_text="Where an engine with no inventory host is: its jobs run on the "
                                             "workers of queue site.<name>. An engine on a host is on its host's.")
    url = serializers.CharField(max_length=300, required=False, allow_blank=True,
                                help_text="unix:///var/run/docker.sock or tcp://host:2376; SSH: set from the host.")
    tls_key = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False,
                                    style={"base_template": "textarea.html"},
                                    help_text="Client key (PEM). Stored encrypted, never returned; empty keeps it.")
    tls_key_set = serializers.SerializerMethodField()

    class Meta:
        model = Engine
        fields = ["id", "name", "environment", "host", "site", "transport", "url", "tls_ca", "tls_cert", "tls_key",
                  "tls_key_set", "tls_verify", "enabled", *OBSERVED]
        read_only_fields = OBSERVED
        validators = []  # the model checks (environment, name) and the URL's uniqueness

    def get_tls_key_set(self, engine) -> bool:
        return bool(engine.tls_key)

    def get_fields(self):
        fields = super().get_fields()
        fields["url"].validators = []  # uniqueness: the model's full_clean, after the permission decision
        return fields

    def validate(self, attrs):
        if attrs.get("transport", getattr(self.instance, "transport", None)) == "ssh":
            attrs.setdefault("url", getattr(self.instance, "url", "") or "ssh://")
        elif not attrs.get("url") and self.instance is None:
            raise serializers.ValidationError({"url": ["Give the engine's URL."]})
        return attrs


class EngineCheckSerializer(serializers.Serializer):
    state = serializers.CharField()
    message = serializers.CharField()
    engine = EngineSerializer()


class ContainerSerializer(serializers.ModelSerializer):
    engine = serializers.CharField(source="engine.name", read_only=True)
    engine_id = serializers.IntegerField(read_only=True)
    environment = serializers.CharField(source="engine.environment.name", read_only=True)
    host = serializers.CharField(source="host.name", read_only=True, allow_null=True)

    class Meta:
        model = Container
        fields = ["id", "engine", "engine_id", "environment", "docker_id", "name", "image", "image_id", "digest",
                  "state", "health", "status", "ports", "labels", "networks", "mounts", "restart_count", "exit_code",
                  "created_at", "started_at", "finished_at", "service_id", "service_name", "task_id", "node_id",
                  "stack", "host", "image_update", "seen"]
        read_only_fields = fields


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = ["task_id", "service_docker_id", "slot", "node_id", "container_id", "image", "state",
                  "desired_state", "message", "error", "exit_code", "timestamp", "ports", "seen"]
        read_only_fields = fields


class ServiceSerializer(serializers.ModelSerializer):
    engine = serializers.CharField(source="engine.name", read_only=True)
    engine_id = serializers.IntegerField(read_only=True)
    environment = serializers.CharField(source="engine.environment.name", read_only=True)

    class Meta:
        model = Service
        fields = ["id", "engine", "engine_id", "environment", "service_id", "name", "image", "mode",
                  "replicas_desired", "replicas_running", "spec", "version", "update_state", "update_message",
                  "endpoint_mode", "publish_mode", "ports", "endpoints", "stack", "labels", "created_at",
                  "updated_at", "image_update", "seen"]
        read_only_fields = fields


class _EngineRow(serializers.ModelSerializer):
    engine = serializers.CharField(source="engine.name", read_only=True)
    environment = serializers.CharField(source="engine.environment.name", read_only=True)


class ImageSerializer(_EngineRow):
    class Meta:
        model = Image
        fields = ["id", "engine", "environment", "docker_id", "tags", "digests", "size", "created_at", "labels", "seen"]
        read_only_fields = fields


class NetworkSerializer(_EngineRow):
    class Meta:
        model = Network
        fields = ["id", "engine", "environment", "docker_id", "name", "driver", "scope", "attachable", "ingress",
                  "internal", "labels", "subnets", "seen"]
        read_only_fields = fields


class VolumeSerializer(_EngineRow):
    class Meta:
        model = Volume
        fields = ["id", "engine", "environment", "name", "driver", "mountpoint", "scope", "labels", "options", "seen"]
        read_only_fields = fields


class NodeSerializer(_EngineRow):
    class Meta:
        model = Node
        fields = ["id", "engine", "environment", "node_id", "hostname", "role", "availability", "state", "address",
                  "engine_version", "leader", "labels", "seen"]
        read_only_fields = fields


class StackSerializer(serializers.ModelSerializer):
    engine = EngineField(help_text="The Swarm manager it deploys to (engine id or name).")
    environment = serializers.CharField(source="engine.environment.name", read_only=True)
    compose = serializers.CharField(trim_whitespace=False, max_length=256 * 1024,
                                    style={"base_template": "textarea.html"})

    class Meta:
        model = Stack
        fields = ["id", "name", "description", "engine", "environment", "compose", "deployed_hash", "deployed_at",
                  "created", "updated"]
        read_only_fields = ["deployed_hash", "deployed_at", "created", "updated"]
        validators = []


class AllowedHostPathSerializer(serializers.ModelSerializer):
    environment = EnvironmentField()

    class Meta:
        model = AllowedHostPath
        fields = ["id", "environment", "path", "description", "created"]
        read_only_fields = ["created"]
        validators = []


# Launching jobs ----------------------------------------------------------------------------

@extend_schema_field({"type": "object", "additionalProperties": True})
class SpecField(serializers.JSONField):
    """A spec as a JSON object (checked field by field by the backend)."""


class CreateServiceSerializer(serializers.Serializer):
    engine = EngineField(help_text="The Swarm manager to create it on (engine id or name).")
    spec = SpecField(help_text="name, image, replicas, mode, command, args, env, ports [{target, published, "
                               "protocol, mode}], resources, constraints, healthcheck, restart_policy, "
                               "update_config, rollback_config, labels, networks, endpoint_mode, mounts, cap_add …")


class CreateContainerSerializer(serializers.Serializer):
    engine = EngineField(help_text="The engine to create it on (id or name).")
    spec = SpecField(help_text="image, name, command, env, ports [{container_port, host_port, host_ip}], "
                               "restart, memory_limit, cpus, mounts, healthcheck …")


class ScaleSerializer(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=0, max_value=1000)


class UpdateServiceSerializer(serializers.Serializer):
    image = serializers.CharField(required=False, allow_blank=True, max_length=500)
    spec = SpecField(required=False, help_text="A whole new spec (the name stays).")
    force = serializers.BooleanField(required=False, default=False)
    parallelism = serializers.IntegerField(required=False, min_value=0, max_value=1000)
    delay = serializers.CharField(required=False, max_length=40, help_text='Seconds or a Go duration ("10s").')
    order = serializers.ChoiceField(required=False, choices=["stop-first", "start-first"])
    failure_action = serializers.ChoiceField(required=False, choices=["pause", "continue", "rollback"])
    monitor = serializers.CharField(required=False, max_length=40)
    max_failure_ratio = serializers.FloatField(required=False, min_value=0, max_value=1)

    def validate(self, attrs):
        if "max_failure_ratio" in attrs:
            attrs["max_failure_ratio"] = f"{attrs['max_failure_ratio']:.4f}".rstrip("0").rstrip(".") or "0"
        return attrs


class BalanceSerializer(serializers.Serializer):
    requests = serializers.IntegerField(required=False, default=20, min_value=1, max_value=1000)
    path = serializers.RegexField(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}$", required=False, default="/")


class ContainerActionSerializer(serializers.Serializer):
    """Parameters of the action (see /api/actions/ for each one's), and for bulk work a strategy."""

    params = serializers.JSONField(required=False, default=dict)
    strategy = serializers.JSONField(required=False, allow_null=True, default=None)

    def validate_params(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Give the parameters as an object.")
        return value

    def validate_strategy(self, value):
        return strategies.validate(value) if value is not None else None


class BulkContainerSerializer(ContainerActionSerializer):
    operation = serializers.ChoiceField(choices=CONTAINER_OPERATIONS, help_text="start, stop, restart …")
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), min_length=1,
                                max_length=5000)


class DeploySerializer(serializers.Serializer):
    prune = serializers.BooleanField(required=False, default=True,
                                     help_text="Remove the stack's services that the file no longer names.")


class StackDiffSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())
    changed = serializers.DictField()
    lines = serializers.ListField(child=serializers.CharField())


class ContainerJobSerializer(serializers.Serializer):
    """The job that was launched; follow it at /api/jobs/{id}/ (or its page, url)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    action = serializers.CharField()
    state = serializers.CharField(help_text="queued, or pending_approval when a policy asks for approval")
    environment = serializers.CharField(source="environment.name")
    params = serializers.JSONField()
    targets_total = serializers.IntegerField()
    approval_request = serializers.IntegerField(source="approval_request_id", allow_null=True)
    created = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, job) -> str:
        return f"/jobs/{job.pk}/"
