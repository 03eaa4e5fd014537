"""Autoscaling policies (operators and administrators of the engine's environment write them;
viewers read) and the history of their evaluations (read-only: the evaluator writes them)."""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can_on
from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet

from .. import services
from ..filtersets import EvaluationFilterSet, ScalingPolicyFilterSet
from ..models import Evaluation, ScalingPolicy
from . import serializers as s


class ScalingPolicyViewSet(ServiceModelViewSet):
    """Autoscaling policies of Swarm services: min/max replicas; CPU % of the tasks or a number from an
    HTTP endpoint on 127.0.0.1 (or an allowed host); a target or up/down thresholds; step limits,
    cooldowns, an evaluation interval; optionally an approval for scaling above N replicas. Each
    scaling is a service.scale job (see evaluations)."""

    queryset = ScalingPolicy.objects.select_related("engine__environment")
    serializer_class = s.ScalingPolicySerializer
    filterset_class = ScalingPolicyFilterSet
    ordering_fields = ["service_name", "created", "updated"]
    write_action = Action.OPERATE

    def perform_create(self, serializer):
        return services.create_policy(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_policy(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_policy(self.actor, instance)

    @extend_schema(request=None, responses={202: s.EvaluationSerializer})
    @action(detail=True, methods=["post"])
    def evaluate(self, request, pk=None):
        """Evaluate the policy now (a worker reads the metric and decides); follow the evaluation at
        /api/scaling-evaluations/{id}/."""
        policy = self.get_object()
        if not can_on(request.user, Action.OPERATE, policy):
            raise PermissionDenied(f"You may not operate {policy}.")
        evaluation = services.evaluate_now(self.actor, policy)
        return Response(s.EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """The history of evaluations: the metric's value and samples, replicas before and after, the
    decision in words and the service.scale job it launched."""

    queryset = Evaluation.objects.select_related("policy__engine__environment")
    serializer_class = s.EvaluationSerializer
    filterset_class = EvaluationFilterSet
    ordering_fields = ["created", "finished"]
