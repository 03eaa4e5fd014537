"""Projects: sources of playbooks and manifests. Administrators of all environments manage them
(their files run as code on the portal's machine); the deploy key is write-only. POST sync/ launches
a project.sync job (operators) and returns it (201) to follow at /api/jobs/{id}/."""
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can_on
from ops_portal.core.api.viewsets import ServiceModelViewSet

from .. import services
from ..filtersets import ProjectFilterSet
from ..models import Project
from . import serializers as s


class ProjectViewSet(ServiceModelViewSet):
    queryset = Project.objects.select_related("environment")
    serializer_class = s.ProjectSerializer
    filterset_class = ProjectFilterSet
    ordering_fields = ["name", "created", "synced_at"]

    def perform_create(self, serializer):
        return services.create_project(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_project(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_project(self.actor, instance)

    @extend_schema(request=None, responses={201: s.SyncJobSerializer})
    @action(detail=True, methods=["post"])
    def sync(self, request, pk=None):
        """Launch a project.sync job now."""
        project = self.get_object()
        if not can_on(request.user, Action.OPERATE, project):
            raise PermissionDenied(f"You may not sync {project}.")
        job = services.launch_sync(self.actor, project)
        return Response(s.SyncJobSerializer(job).data, status=status.HTTP_201_CREATED)
