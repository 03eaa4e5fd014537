from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core.api.viewsets import PortalViewSet, RowsListMixin
from ops_portal.inventory.models import Host

from .. import queries, services
from ..choices import KILL_ACTION, PAUSE_ACTION, RESUME_ACTION, SIGNAL_ACTION, STOP_ACTION
from ..filtersets import ProcessFilterSet, ProcessScanFilterSet
from ..models import Process, ProcessScan
from . import serializers as s


def _query(serializer_class, request):
    """Validated query parameters, refusing ones the serializer does not know."""
    unknown = sorted(set(request.query_params) - set(serializer_class().fields) - {"format"})
    if unknown:
        raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class ProcessViewSet(RowsListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Every process of every host as its latest scan saw it. Actions launch jobs (operators and
    administrators of the host's environment); a process owned by supervisord, systemd or PM2 is
    acted on through its manager when the portal knows its program (use_manager, default true)."""

    queryset = Process.objects.select_related("host__environment")
    serializer_class = s.ProcessSerializer
    filterset_class = ProcessFilterSet
    ordering_fields = ["pid", "name", "user", "cpu_percent", "rss", "threads", "fds", "start_time", "host__name"]
    ordering = ["host__name", "pid"]
    list_computed = s.PROCESS_ROW_COMPUTED

    @extend_schema(parameters=[s.TreeQuerySerializer], responses=s.ProcessNodeSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def tree(self, request):
        """One host's process tree: roots (parent not on the host, or 0), children nested by pid."""
        params = _query(s.TreeQuerySerializer, request)
        host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=params["host"])
        return Response(queries.tree(host))

    @extend_schema(parameters=[s.TopQuerySerializer], responses=s.ProcessSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def top(self, request):
        """The processes using the most CPU (by=cpu) or memory (by=memory, RSS), fleet-wide or on one
        host or environment."""
        params = _query(s.TopQuerySerializer, request)
        queryset = self.get_queryset()
        if "host" in params:
            host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=params["host"])
            queryset = queryset.filter(host=host)
        if "environment" in params:
            queryset = queryset.filter(host__environment__name=params["environment"])
        rows = queries.top(queryset.select_related("host__environment"), params["by"], params["n"])
        return Response(s.ProcessSerializer(rows, many=True).data)

    def _launch(self, request, job_action, serializer_class):
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.launch_action(self.actor, self.get_object(), job_action, dict(serializer.validated_data))
        return Response(s.ProcessJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.SignalSerializer, responses={201: s.ProcessJobSerializer})
    @action(detail=True, methods=["post"])
    def signal(self, request, pk=None):
        """Launch a process.signal job: send one signal (by pid and start time)."""
        return self._launch(request, SIGNAL_ACTION, s.SignalSerializer)

    @extend_schema(request=s.StopSerializer, responses={201: s.ProcessJobSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Launch a process.stop job: SIGTERM, then SIGKILL after grace_seconds."""
        return self._launch(request, STOP_ACTION, s.StopSerializer)

    @extend_schema(request=s.UseManagerSerializer, responses={201: s.ProcessJobSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Launch a process.pause job (SIGSTOP: state T)."""
        return self._launch(request, PAUSE_ACTION, s.UseManagerSerializer)

    @extend_schema(request=s.UseManagerSerializer, responses={201: s.ProcessJobSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Launch a process.resume job (SIGCONT)."""
        return self._launch(request, RESUME_ACTION, s.UseManagerSerializer)

    @extend_schema(request=s.UseManagerSerializer, responses={201: s.ProcessJobSerializer})
    @action(detail=True, methods=["post"])
    def kill(self, request, pk=None):
        """Launch a process.kill job (SIGKILL)."""
        return self._launch(request, KILL_ACTION, s.UseManagerSerializer)


class ProcessScanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Scans of hosts' processes, newest first, with what changed since the scan before (the last
    SCANS_KEPT per host). POST scan/ launches a processes.scan job."""

    queryset = ProcessScan.objects.select_related("host__environment")
    serializer_class = s.ProcessScanSerializer
    filterset_class = ProcessScanFilterSet
    ordering_fields = ["time", "process_count", "elapsed"]

    @extend_schema(request=s.ScanRequestSerializer, responses={201: s.ProcessJobSerializer})
    @action(detail=False, methods=["post"], pagination_class=None, filter_backends=[])
    def scan(self, request):
        """Launch a processes.scan job on some hosts (ids, of one environment) or on every enabled host
        of an environment (operators and administrators there)."""
        serializer = s.ScanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "environment" in data:
            environment = restrict(Environment.objects.all(), request.user, Action.VIEW).filter(
                name=data["environment"]).first()
            if environment is None:
                raise ValidationError({"environment": ["No environment of this name that you may see."]})
            job = services.launch_scan(self.actor, environment)
        else:
            wanted = set(data["hosts"])
            hosts = list(restrict(Host.objects.select_related("environment"), request.user, Action.VIEW)
                         .filter(pk__in=wanted))
            missing = sorted(wanted - {h.pk for h in hosts})
            if missing:
                raise ValidationError({"hosts": [f"No host with id {', '.join(map(str, missing[:20]))} that you may "
                                                 f"see."]})
            environments = {h.environment_id for h in hosts}
            if len(environments) > 1:
                raise ValidationError({"hosts": ["Scan hosts of one environment per job."]})
            job = services.launch_scan(self.actor, hosts[0].environment, hosts)
        return Response(s.ProcessJobSerializer(job).data, status=status.HTTP_201_CREATED)
