import datetime

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.core.api.viewsets import PortalViewSet, RowsListMixin, ServiceModelViewSet
from ops_portal.inventory.models import Host

from .. import metrics, services
from ..choices import STEPS
from ..filtersets import AlertFilterSet, AlertRuleFilterSet
from ..models import Alert, AlertRule
from . import serializers as s

STEP_NAMES = {value: name for name, value in STEPS.items()}


class AlertRuleViewSet(ServiceModelViewSet):
    """Alert rules: a metric, a threshold held for a while, a clear threshold, a scope."""

    queryset = AlertRule.objects.select_related("environment", "group")
    serializer_class = s.AlertRuleSerializer
    filterset_class = AlertRuleFilterSet
    ordering_fields = ["name", "created", "severity"]

    def perform_create(self, serializer):
        return services.create_rule(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_rule(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_rule(self.actor, instance)


class AlertViewSet(RowsListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Alerts from rules and from other sources (drift, compliance). They resolve by themselves."""

    queryset = Alert.objects.select_related("environment", "rule")
    serializer_class = s.AlertSerializer
    filterset_class = AlertFilterSet
    ordering_fields = ["fired_at", "resolved_at", "severity", "state"]

    @extend_schema(request=s.AcknowledgeSerializer, responses=s.AlertSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """Say you are on it (operate in the alert's environment); the alert stays open until it
        resolves."""
        serializer = s.AcknowledgeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.acknowledge(self.actor, self.get_object(), serializer.validated_data["note"])
        return Response(s.AlertSerializer(Alert.objects.select_related("environment", "rule").get(pk=alert.pk)).data)


class MetricsView(APIView):
    """A host's metric over time: raw samples, or 5-minute/hourly averages and maxima.

    Times are unix seconds. Without `step`, the finest resolution still kept for `since` that
    gives at most 2500 points per series is used."""

    @extend_schema(parameters=[s.MetricsQuerySerializer], responses=s.MetricsSerializer)
    def get(self, request):
        unknown = sorted(set(request.query_params) - set(s.MetricsQuerySerializer().fields) - {"format"})
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
        query = s.MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        now = timezone.now()
        until = params.get("until") or now
        since = params.get("since") or until - datetime.timedelta(hours=6)
        if since >= until:
            raise ValidationError({"since": ["Must be before until (default: now)."]})
        start, end = int(since.timestamp()), int(until.timestamp())
        if "step" in params:
            step = STEPS[params["step"]]
            if metrics.points(start, end, step) > metrics.MAX_POINTS:
                raise ValidationError({"step": [f"More than {metrics.MAX_POINTS} points per series: ask for a "
                                                f"coarser step or a shorter range."]})
        else:
            step = metrics.choose_step(start, end, int(now.timestamp()))
        host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=params["host"])
        series = metrics.read(host, params["metric"], start, end, step)
        return Response({"host": host.pk, "metric": params["metric"], "step": STEP_NAMES[step],
                         "since": since, "until": until, "series": series})
