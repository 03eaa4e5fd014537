from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet
from ops_portal.inventory.models import Host

from .. import services
from ..filtersets import ConfigTemplateFilterSet, DriftReportFilterSet
from ..models import ConfigTemplate, DriftReport
from . import serializers as s


class ConfigTemplateViewSet(ServiceModelViewSet):
    """Configuration templates: a file rendered per host with Jinja2, its mode, owner and group, and a
    service action run when it changed. Administrators manage them; operators apply them."""

    queryset = ConfigTemplate.objects.select_related("environment")
    serializer_class = s.ConfigTemplateSerializer
    filterset_class = ConfigTemplateFilterSet
    ordering_fields = ["name", "path", "created", "updated"]
    extra_query_params = ("host",)  # of render/

    def perform_create(self, serializer):
        return services.create_config(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_config(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_config(self.actor, instance)

    @extend_schema(request=None, parameters=[OpenApiParameter("host", OpenApiTypes.INT, required=True)],
                   responses=s.RenderedSerializer)
    @action(detail=True, methods=["post"])
    def render(self, request, pk=None):
        """The content this template renders to for one host (a sensitive one: administrators only)."""
        config = self.get_object()
        raw = request.query_params.get("host", "")
        if not raw.isdigit():
            raise ValidationError({"host": ["Give the id of a host: ?host=ID."]})
        hosts = restrict(Host.objects.select_related("environment").prefetch_related("groups"), request.user,
                         Action.VIEW)
        host = hosts.filter(pk=int(raw)).first()
        if host is None:
            raise ValidationError({"host": ["No host with this id that you may see."]})
        return Response(services.render_for(request.user, config, host))

    @extend_schema(request=s.ApplySerializer, responses={201: s.LaunchedJobSerializer})
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Launch a config.apply job (a dry run with "dry_run": true); it may wait for approval."""
        serializer = s.ApplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = services.launch_apply(self.actor, self.get_object(), dry_run=data["dry_run"], hosts=data.get("hosts"))
        return Response(s.LaunchedJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: s.LaunchedJobSerializer})
    @action(detail=True, methods=["post"], url_path="check-drift")
    def check_drift(self, request, pk=None):
        """Launch a config.drift job for this template now."""
        job = services.launch_check(self.actor, self.get_object())
        return Response(s.LaunchedJobSerializer(job).data, status=status.HTTP_201_CREATED)


class DriftReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """The last drift check of each configuration on each host (drifted first)."""

    queryset = DriftReport.objects.select_related("config__environment", "host")
    serializer_class = s.DriftReportSerializer
    filterset_class = DriftReportFilterSet
    ordering_fields = ["checked", "drifted_since"]

    @extend_schema(request=None, responses={201: s.LaunchedJobSerializer})
    @action(detail=True, methods=["post"])
    def remediate(self, request, pk=None):
        """Launch a config.apply job of this report's template on its host."""
        job = services.remediate(self.actor, self.get_object())
        return Response(s.LaunchedJobSerializer(job).data, status=status.HTTP_201_CREATED)
