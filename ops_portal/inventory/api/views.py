from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.core.api.parsers import LimitedJSONParser
from ops_portal.core.api.rows import Rows
from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet
from ops_portal.core.context import Actor

from .. import services, transfer
from ..filtersets import CredentialFilterSet, HostFilterSet, HostGroupFilterSet, SiteFilterSet
from ..models import Artifact, Credential, Host, HostGroup, Site, group_names, hosts_for_lists
from . import serializers as s


class SiteViewSet(ServiceModelViewSet):
    """Sites (locations, network zones): a job whose targets are on one site runs on the workers of
    its queue `site.<name>`. Global: administrators of all environments manage them."""

    queryset = Site.objects.all()
    create_needs_everywhere = True
    serializer_class = s.SiteSerializer
    filterset_class = SiteFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_site(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_site(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_site(self.actor, instance)


class CredentialViewSet(ServiceModelViewSet):
    """SSH credentials. Keys and passphrases are write-only: stored encrypted, never returned."""

    queryset = Credential.objects.select_related("environment")
    serializer_class = s.CredentialSerializer
    filterset_class = CredentialFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_credential(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_credential(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_credential(self.actor, instance)

    @extend_schema(request=s.RotateCredentialSerializer, responses=s.CredentialSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request, pk=None):
        """Replace the private key (and passphrase)."""
        serializer = s.RotateCredentialSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credential = services.rotate_credential(self.actor, self.get_object(), **serializer.validated_data)
        return Response(s.CredentialSerializer(credential).data)


class HostGroupViewSet(ServiceModelViewSet):
    queryset = HostGroup.objects.select_related("environment")
    serializer_class = s.HostGroupSerializer
    filterset_class = HostGroupFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_group(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_group(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_group(self.actor, instance)


class HostViewSet(ServiceModelViewSet):
    queryset = Host.objects.select_related("environment", "credential", "site").prefetch_related("groups")
    serializer_class = s.HostSerializer
    filterset_class = HostFilterSet
    ordering_fields = ["name", "created", "last_seen"]

    def get_queryset(self):
        if self.action == "list":
            return restrict(hosts_for_lists(), self.request.user, self.view_action)
        return super().get_queryset()

    def list(self, request, *args, **kwargs):
        """Written from values() rows (ops_portal.core.api.rows), with the serializer's JSON: a page
        of 1,000 hosts built 4,000 model instances (hosts, environments, sites, groups); the
        page's group names come in one more query."""
        groups = {}
        rows = Rows(self.get_serializer(), {"groups": ([], lambda row: groups.get(row["id"], ()))})
        filtered = self.filter_queryset(self.get_queryset()).prefetch_related(None)
        queryset = filtered.values(*rows.paths)
        if self.paginator is not None:
            self.paginator.count_source = filtered
        page = self.paginate_queryset(queryset)
        found = page if page is not None else list(queryset)
        groups.update(group_names({row["id"] for row in found}))
        data = rows.write(found)
        return self.get_paginated_response(data) if page is not None else Response(data)

    def perform_create(self, serializer):
        return services.create_host(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_host(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_host(self.actor, instance)

    @extend_schema(request=None, responses=s.HostSerializer)
    @action(detail=True, methods=["post"], url_path="accept-host-key")
    def accept_host_key(self, request, pk=None):
        """Pin the new host key the host offered (after checking it out of band)."""
        return Response(s.HostSerializer(services.accept_host_key(self.actor, self.get_object())).data)


class ArtifactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.DestroyModelMixin, PortalViewSet):
    """Release artifacts for host.deploy: upload a .tar.gz, or the files of a directory."""

    queryset = Artifact.objects.select_related("environment").defer("data")
    serializer_class = s.ArtifactSerializer
    parser_classes = [MultiPartParser]
    ordering_fields = ["created", "name"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("archive"):
            content = _read_upload(data["archive"])
        else:
            content = services.pack_directory({path: _read_upload(f) for path, f in zip(data["paths"], data["files"],
                                                                                        strict=True)})
        artifact = services.create_artifact(self.actor, name=data["name"], environment=data["environment"],
                                            data=content)
        return Response(s.ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.delete_artifact(self.actor, instance)


def _read_upload(upload):
    if upload.size > Artifact.MAX_SIZE:
        raise ValidationError({"archive": [f"At most {Artifact.MAX_SIZE // (1024 * 1024)} MiB."]})
    return upload.read()


class InventoryImportView(APIView):
    """Bulk add hosts from CSV or an Ansible YAML inventory: all or nothing, each host audited."""

    parser_classes = [MultiPartParser, LimitedJSONParser]

    @extend_schema(request=s.ImportSerializer, responses={201: s.ImportResultSerializer})
    def post(self, request):
        serializer = s.ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        text = data["file"].read().decode("utf-8", "replace") if data.get("file") else data.get("content", "")
        if data["format"] == "csv":
            rows, group_vars = transfer.parse_csv(text, data.get("environment"))
        else:
            if not data.get("environment"):
                raise ValidationError({"environment": ["Say which environment the Ansible inventory goes to."]})
            rows, group_vars = transfer.parse_ansible(text, data["environment"])
        result = transfer.apply_import(Actor.from_request(request), rows, group_vars,
                                       update_existing=data["update_existing"], credential_name=data["credential"])
        return Response(result, status=status.HTTP_201_CREATED)


class InventoryExportView(APIView):
    """The hosts you may see, as CSV or an Ansible YAML inventory (?file_format=csv|ansible)."""

    @extend_schema(parameters=[OpenApiParameter("file_format", str, enum=["csv", "ansible"]),
                               OpenApiParameter("environment", str)],
                   responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/yaml"): OpenApiTypes.OBJECT})
    def get(self, request):
        unknown = set(request.query_params) - {"file_format", "environment"}
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
        hosts = restrict(Host.objects.all(), request.user, Action.VIEW).order_by("name")
        if request.query_params.get("environment"):
            hosts = hosts.filter(environment__name=request.query_params["environment"])
        kind = request.query_params.get("file_format", "csv")
        if kind == "csv":
            response = HttpResponse(transfer.export_csv(hosts), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="hosts.csv"'
        elif kind == "ansible":
            response = HttpResponse(transfer.export_ansible(hosts), content_type="application/yaml")
            response["Content-Disposition"] = 'attachment; filename="inventory.yml"'
        else:
            raise ValidationError({"file_format": ["Choose csv or ansible."]})
        return response
