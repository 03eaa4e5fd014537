import datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from schedulers.process import control

from ..choices import STATES
from ..models import Process, ProcessScan


class PortSerializer(serializers.Serializer):
    address = serializers.CharField()
    port = serializers.IntegerField()


class ProcessSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    environment = serializers.CharField(source="host.environment.name", read_only=True)
    state_label = serializers.CharField(read_only=True)
    started = serializers.DateTimeField(read_only=True)
    ports = serializers.SerializerMethodField()
    cmdline = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Process
        fields = ["id", "host", "host_name", "environment", "pid", "ppid", "user", "name", "cmdline", "command",
                  "state", "state_label", "cpu_percent", "cpu_time", "rss", "threads", "fds", "start_time", "started",
                  "ports", "owner_kind", "owner_name", "main", "container_id"]
        read_only_fields = fields

    @extend_schema_field(PortSerializer(many=True))
    def get_ports(self, process):
        return [{"address": address, "port": port} for address, port in process.ports]


# ProcessSerializer's fields that are not columns, for list pages written from values() rows
# (ops_portal.core.api.rows): the model's properties and get_ports, on the row.
PROCESS_ROW_COMPUTED = {
    "state_label": (["state"], lambda row: STATES.get(row["state"], row["state"])),
    "started": (["start_time"], lambda row: datetime.datetime.fromtimestamp(row["start_time"], tz=datetime.UTC)),
    "ports": (["ports"], lambda row: [{"address": address, "port": port} for address, port in row["ports"]]),
}


class ProcessNodeSerializer(serializers.Serializer):
    """One process of a host's tree; children nested the same way."""

    id = serializers.IntegerField()
    pid = serializers.IntegerField()
    ppid = serializers.IntegerField()
    user = serializers.CharField()
    name = serializers.CharField()
    command = serializers.CharField()
    state = serializers.CharField()
    cpu_percent = serializers.FloatField()
    rss = serializers.IntegerField()
    owner_kind = serializers.CharField()
    owner_name = serializers.CharField()
    children = serializers.ListField(child=serializers.DictField(), help_text="Nodes of the same shape.")


class ProcessScanSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    environment = serializers.CharField(source="host.environment.name", read_only=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)

    class Meta:
        model = ProcessScan
        fields = ["id", "host", "host_name", "environment", "time", "source", "cpu_basis", "process_count", "elapsed",
                  "bytes", "new_count", "gone_count", "restarted_count", "changes", "first", "error", "job"]
        read_only_fields = fields


class ScanRequestSerializer(serializers.Serializer):
    hosts = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False,
                                  allow_empty=False, max_length=5000, help_text="Host ids, all of one environment.")
    environment = serializers.CharField(required=False, max_length=64,
                                        help_text="Every enabled host of this environment (instead of hosts).")

    def validate(self, data):
        if ("hosts" in data) == ("environment" in data):
            raise serializers.ValidationError({"hosts": ["Give either hosts (ids) or an environment (name)."]})
        return data


class UseManagerSerializer(serializers.Serializer):
    use_manager = serializers.BooleanField(required=False, default=True, help_text=(
        "When supervisord, systemd or PM2 owns the process as a program the portal knows, act through the manager."))


class SignalSerializer(UseManagerSerializer):
    signal = serializers.ChoiceField(choices=list(control.SIGNALS), help_text="Without SIG: TERM, HUP, …")


class StopSerializer(UseManagerSerializer):
    grace_seconds = serializers.IntegerField(required=False, default=10, min_value=0, max_value=control.MAX_GRACE,
                                             help_text="Seconds between SIGTERM and SIGKILL.")


class TreeQuerySerializer(serializers.Serializer):
    host = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class TopQuerySerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=["cpu", "memory"], default="cpu")
    n = serializers.IntegerField(min_value=1, max_value=100, default=10)
    host = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    environment = serializers.CharField(max_length=64, required=False)


class ProcessJobSerializer(serializers.Serializer):
    """The job that was launched; follow it at /api/jobs/{id}/ or url."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    action = serializers.CharField()
    state = serializers.CharField()
    environment = serializers.CharField(source="environment.name")
    params = serializers.JSONField()
    targets_total = serializers.IntegerField()
    approval_request = serializers.IntegerField(source="approval_request_id", allow_null=True)
    created = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, job) -> str:
        return f"/jobs/{job.pk}/"
