from rest_framework import serializers

from ops_portal.core.api.fields import VisiblePrimaryKeyRelatedField
from ops_portal.inventory.models import Host

from ..choices import OPERATIONS, SIGNALS
from ..models import HostManager, Program, ProgramEvent
from ..services import refusal


class HostManagerSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    environment = serializers.CharField(source="host.environment.name", read_only=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)

    class Meta:
        model = HostManager
        fields = ["id", "host", "host_name", "environment", "manager", "available", "version", "reason", "supports",
                  "why_not", "checked", "job"]
        read_only_fields = fields


class ProgramSerializer(serializers.ModelSerializer):
    """A program as the portal knows it: its desired spec (portal-managed ones) and what was observed."""

    host = VisiblePrimaryKeyRelatedField(queryset=Host.objects.all())
    host_name = serializers.CharField(source="host.name", read_only=True)
    environment = serializers.CharField(source="host.environment.name", read_only=True)
    spec = serializers.JSONField(required=False, help_text=(
        "Portal-managed programs: command (argv list), directory, environment, user, autostart, autorestart "
        "(true/false/unexpected), startsecs, startretries, stopsignal, stopwaitsecs, numprocs, memory_max (bytes), "
        "cpu_quota (percent of one CPU), tasks_max, nofile."))
    actions = serializers.SerializerMethodField(help_text="Each operation: \"\" when offered, else why not.")

    class Meta:
        model = Program
        fields = ["id", "host", "host_name", "environment", "manager", "name", "group", "description", "managed",
                  "spec", "applied_spec", "applied_at", "present", "state", "raw_state", "pids", "restarts",
                  "exit_code", "exit_at", "started_at", "stopped_at", "crash_loop", "crash_loop_since", "alerted",
                  "exit_reason", "stderr_tail", "limits", "error_count", "error_window", "errors_counted", "details",
                  "updated", "created", "actions"]
        read_only_fields = [f for f in fields if f not in ("host", "manager", "name", "description", "spec")]
        validators = []  # the model checks (host, manager, name) after the permission decision

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            for name in ("host", "manager", "name"):  # a program's identity does not change
                fields[name].read_only = True
        return fields

    def get_actions(self, program) -> dict:
        managers = self.context.get("managers")
        manager = managers.get((program.host_id, program.manager)) if managers is not None else None
        if managers is not None and manager is None:
            return {operation: refusal(program, operation, _Unchecked()) for operation in OPERATIONS}
        return {operation: refusal(program, operation, manager) for operation in OPERATIONS}


class ProgramRow:
    """What refusal() reads of a program, from a values() row of a list page (its manager's
    label, host name, state and whether the portal manages it)."""

    __slots__ = ("host", "host_id", "manager", "managed", "name", "state")
    COLUMNS = ["host", "host__name", "manager", "managed", "name", "state"]
    _labels = None

    class _Host:
        __slots__ = ("name",)

        def __init__(self, name):
            self.name = name

    def __init__(self, row):
        self.host = self._Host(row["host__name"])
        self.host_id = row["host"]
        self.manager, self.managed, self.name, self.state = row["manager"], row["managed"], row["name"], row["state"]

    def get_manager_display(self):
        if ProgramRow._labels is None:
            ProgramRow._labels = {k: str(v) for k, v in Program._meta.get_field("manager").flatchoices}
        return ProgramRow._labels.get(self.manager, self.manager)


def row_actions(managers):
    """The `actions` field of ProgramSerializer for a values() row, given the page's managers."""

    def actions(row):
        program = ProgramRow(row)
        manager = managers.get((program.host_id, program.manager))
        if manager is None:
            manager = _Unchecked()
        return {operation: refusal(program, operation, manager) for operation in OPERATIONS}
    return actions


class _Unchecked:
    """A manager no refresh has looked at yet (for refusal())."""

    def refusal(self, action):
        return "this host's managers have not been checked yet: refresh its programs first"


class ProgramEventSerializer(serializers.ModelSerializer):
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)

    class Meta:
        model = ProgramEvent
        fields = ["id", "program", "time", "kind", "exit_code", "detail", "job"]
        read_only_fields = fields


class ProgramJobSerializer(serializers.Serializer):
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


class OperationSerializer(serializers.Serializer):
    operation = serializers.ChoiceField(choices=list(OPERATIONS))
    signal = serializers.ChoiceField(choices=list(SIGNALS), required=False, help_text="For signal (default TERM).")
    count = serializers.IntegerField(required=False, min_value=1, max_value=200,
                                     help_text="For scale: supervisord numprocs (1-200), PM2 instances (1-64).")


class LogsSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["tail", "follow", "search"], default="tail")
    stream = serializers.ChoiceField(choices=["stdout", "stderr"], default="stdout")
    lines = serializers.IntegerField(min_value=1, max_value=10000, default=200)
    duration = serializers.IntegerField(min_value=1, max_value=3600, default=300,
                                        help_text="follow: seconds to follow before the job ends.")
    text = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    since = serializers.DateTimeField(required=False, allow_null=True, default=None)
    until = serializers.DateTimeField(required=False, allow_null=True, default=None)


class RefreshSerializer(serializers.Serializer):
    hosts = VisiblePrimaryKeyRelatedField(queryset=Host.objects.select_related("environment"), many=True,
                                          help_text="Host ids, all of one environment.")

    def validate_hosts(self, hosts):
        if not hosts:
            raise serializers.ValidationError("Give at least one host.")
        if len({h.environment_id for h in hosts}) > 1:
            raise serializers.ValidationError("Give hosts of one environment per refresh.")
        return hosts


class InstallSerializer(serializers.Serializer):
    host = VisiblePrimaryKeyRelatedField(queryset=Host.objects.select_related("environment"))

