from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet

from .. import services
from ..choices import Decision
from ..filtersets import ApprovalPolicyFilterSet, ApprovalRequestFilterSet
from ..models import ApprovalDecision, ApprovalPolicy, ApprovalRequest
from . import serializers as s


class ApprovalPolicyViewSet(ServiceModelViewSet):
    queryset = ApprovalPolicy.objects.select_related("environment")
    serializer_class = s.ApprovalPolicySerializer
    filterset_class = ApprovalPolicyFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_policy(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_policy(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_policy(self.actor, instance)


class ApprovalRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Approval requests. Approve or reject with a comment; nobody decides on their own request."""

    queryset = ApprovalRequest.objects.select_related("environment").prefetch_related(
        Prefetch("decisions", queryset=ApprovalDecision.objects.all()), "comments")
    serializer_class = s.ApprovalRequestSerializer
    filterset_class = ApprovalRequestFilterSet
    ordering_fields = ["created", "expires_at"]

    def get_serializer_class(self):
        return s.ApprovalRequestDetailSerializer if self.action != "list" else s.ApprovalRequestSerializer

    def _decide(self, request, decision):
        serializer = s.DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approval = services.decide(self.actor, self.get_object(), decision, serializer.validated_data["comment"])
        return Response(s.ApprovalRequestDetailSerializer(ApprovalRequest.objects.get(pk=approval.pk)).data)

    @extend_schema(request=s.DecideSerializer, responses=s.ApprovalRequestDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, Decision.APPROVE)

    @extend_schema(request=s.DecideSerializer, responses=s.ApprovalRequestDetailSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, Decision.REJECT)

    @extend_schema(request=s.AddCommentSerializer, responses=s.ApprovalRequestDetailSerializer)
    @action(detail=True, methods=["post"])
    def comment(self, request, pk=None):
        serializer = s.AddCommentSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        approval = self.get_object()
        services.add_comment(self.actor, approval, serializer.validated_data["text"])
        return Response(s.ApprovalRequestDetailSerializer(ApprovalRequest.objects.get(pk=approval.pk)).data)
