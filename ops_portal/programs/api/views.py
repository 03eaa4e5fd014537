from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ops_portal.core.api.rows import Rows
from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet

from .. import services
from ..choices import EventKind
from ..filtersets import HostManagerFilterSet, ProgramFilterSet
from ..models import HostManager, Program, ProgramEvent
from . import serializers as s


def _launched(job):
    if job is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(s.ProgramJobSerializer(job).data, status=status.HTTP_201_CREATED)


class ProgramViewSet(ServiceModelViewSet):
    """Programs of supervisord, systemd and PM2 on the inventory's hosts. Everyone who sees a host sees
    its programs; operators launch operations and logs jobs; administrators create portal-managed
    programs, change their spec, apply and remove them. Actions a host's manager does not offer are
    refused with its reason (400)."""

    queryset = Program.objects.select_related("host__environment")
    serializer_class = s.ProgramSerializer
    filterset_class = ProgramFilterSet
    ordering_fields = ["name", "host__name", "manager", "state", "restarts", "updated", "error_count", "exit_at"]
    # No DELETE: a program leaves its host through a program.remove job (remove/).
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["managers"] = None
        return context

    def list(self, request, *args, **kwargs):
        """Written from values() rows (ops_portal.core.api.rows), with the serializer's JSON."""
        managers = {}
        rows = Rows(self.get_serializer(), {"actions": (s.ProgramRow.COLUMNS, s.row_actions(managers))})
        queryset = self.filter_queryset(self.get_queryset()).values(*rows.paths)
        page = self.paginate_queryset(queryset)
        found = page if page is not None else list(queryset)
        managers.update(_managers_of_hosts({row["host"] for row in found}))
        data = rows.write(found)
        return self.get_paginated_response(data) if page is not None else Response(data)

    def perform_create(self, serializer):
        data = serializer.validated_data
        return services.create_program(self.actor, host=data["host"], manager=data["manager"], name=data["name"],
                                       spec=data.get("spec"), description=data.get("description", ""))

    def perform_update(self, serializer):
        return services.update_program(self.actor, serializer.instance, **serializer.validated_data)

    @extend_schema(request=s.OperationSerializer, responses={201: s.ProgramJobSerializer})
    @action(detail=True, methods=["post"])
    def act(self, request, pk=None):
        """Launch an operation (start, stop, restart, reload, signal, pause, resume, scale, enable, disable,
        freeze, thaw) on this program as a job."""
        serializer = s.OperationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return _launched(services.launch_operation(self.actor, self.get_object(), data["operation"],
                                                   signal=data.get("signal"), count=data.get("count")))

    @extend_schema(request=None, responses={201: s.ProgramJobSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Write this portal-managed program's spec to its host (program.apply; administrators)."""
        return _launched(services.launch_apply(self.actor, self.get_object()))

    @extend_schema(request=None, responses={201: s.ProgramJobSerializer, 204: None})
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        """Remove this portal-managed program from its host (program.remove; administrators). A program
        that never reached its host is forgotten at once (204)."""
        return _launched(services.remove_program(self.actor, self.get_object()))

    @extend_schema(request=s.LogsSerializer, responses={201: s.ProgramJobSerializer})
    @action(detail=True, methods=["post"])
    def logs(self, request, pk=None):
        """Launch a program.logs job: tail, follow live (streamed to the job) or search by text and time."""
        serializer = s.LogsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return _launched(services.launch_logs(self.actor, self.get_object(), **serializer.validated_data))

    @extend_schema(parameters=[OpenApiParameter("kind", OpenApiTypes.STR, enum=EventKind.values)],
                   responses=s.ProgramEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """Restart history: starts, exits, crashes, restarts, memory-limit stops, stops (newest first)."""
        if not str(pk).isdigit():
            raise Http404
        program = get_object_or_404(self.get_queryset(), pk=int(pk))
        unknown = set(request.query_params) - {"kind", "limit", "offset", "format"}
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in sorted(unknown)})
        queryset = ProgramEvent.objects.filter(program=program)
        kind = request.query_params.get("kind")
        if kind is not None:
            if kind not in EventKind.values:
                raise ValidationError({"kind": [f"Must be one of {', '.join(EventKind.values)}."]})
            queryset = queryset.filter(kind=kind)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.ProgramEventSerializer(page, many=True).data)

    @extend_schema(request=s.RefreshSerializer, responses={201: s.ProgramJobSerializer})
    @action(detail=False, methods=["post"])
    def refresh(self, request):
        """Launch programs.refresh on some hosts now (operators)."""
        serializer = s.RefreshSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        hosts = serializer.validated_data["hosts"]
        return _launched(services.launch_refresh(self.actor, hosts[0].environment, hosts))

    @extend_schema(request=s.InstallSerializer, responses={201: s.ProgramJobSerializer})
    @action(detail=False, methods=["post"], url_path="install-supervisor")
    def install_supervisor(self, request):
        """Install supervisord on a host without any process manager (administrators)."""
        serializer = s.InstallSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return _launched(services.launch_install(self.actor, serializer.validated_data["host"]))


def _managers_of_hosts(host_ids):
    return {(m.host_id, m.manager): m for m in HostManager.objects.filter(host_id__in=host_ids)}


class HostManagerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Which process managers each host has (and versions), what they offer and why not (read-only;
    a programs refresh updates them)."""

    queryset = HostManager.objects.select_related("host__environment")
    serializer_class = s.HostManagerSerializer
    filterset_class = HostManagerFilterSet
    ordering_fields = ["host__name", "manager", "checked"]
