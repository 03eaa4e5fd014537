import json

from django.http import StreamingHttpResponse
from django_celery_beat.models import PeriodicTask
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import scope_for
from ops_portal.core import periodic
from ops_portal.core.api.viewsets import PortalViewSet, RowsListMixin, ServiceModelViewSet

from .. import actions, schedules
from ..filtersets import FreezeWindowFilterSet, JobFilterSet, JobTemplateFilterSet
from ..launch import launch as launch_template
from ..launch import launch_adhoc, relaunch, request_cancel
from ..models import FreezeWindow, Job, JobEvent, JobSchedule, JobTemplate, MaintenanceWindow
from ..output import iter_output
from ..streams import event_payload
from ..system import update_builtin
from ..templates import create_template, delete_template, update_template
from ..windows import (
    create_freeze,
    create_window,
    delete_freeze,
    delete_window,
    hold_for_window,
    update_window,
)
from . import serializers as s

EVENT_PAGE_MAX = 10000


class ActionListView(APIView):
    """The actions jobs can run, with their parameters."""

    @extend_schema(responses=s.ActionSerializer(many=True))
    def get(self, request):
        return Response([
            {"name": a.name, "label": a.label, "target_kind": a.target_kind, "description": a.description,
             "mutating": a.mutating, "parameters": a.parameters}
            for a in actions.all_actions().values()
        ])


class JobTemplateViewSet(ServiceModelViewSet):
    queryset = JobTemplate.objects.select_related("environment")
    serializer_class = s.JobTemplateSerializer
    filterset_class = JobTemplateFilterSet
    ordering_fields = ["name", "created", "updated"]

    def perform_create(self, serializer):
        return create_template(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return update_template(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        delete_template(self.actor, instance)

    @extend_schema(request=s.LaunchSerializer, responses={201: s.JobDetailSerializer})
    @action(detail=True, methods=["post"])
    def launch(self, request, pk=None):
        """Launch a job from this template."""
        serializer = s.LaunchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        template = self.get_object()
        not_before = hold_for_window(template.environment) if data["in_window"] else data["not_before"]
        job = launch_template(self.actor, template, data["params"], emergency=data["emergency"],
                              emergency_reason=data["emergency_reason"], not_before=not_before,
                              limit=data["limit"] or None)
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)


class JobViewSet(RowsListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 PortalViewSet):
    """Jobs. POST launches an ad-hoc job; templates launch through /job-templates/{id}/launch/."""

    queryset = Job.objects.select_related("environment", "template")
    serializer_class = s.JobSerializer
    filterset_class = JobFilterSet
    ordering_fields = ["created", "started", "finished", "state"]
    extra_query_params = ("after",)
    write_action = Action.OPERATE

    def get_serializer_class(self):
        if self.action == "retrieve":
            return s.JobDetailSerializer
        if self.action == "create":
            return s.AdhocJobSerializer
        return s.JobSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("targets")
        return queryset

    @extend_schema(request=s.AdhocJobSerializer, responses={201: s.JobDetailSerializer})
    def create(self, request, *args, **kwargs):
        serializer = s.AdhocJobSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        extra_vars = (data["params"] or {}).get("extra_vars") if isinstance(data["params"], dict) else None
        if isinstance(extra_vars, dict):  # a JSON object is taken as the mapping it is (the text parameter's JSON)
            data["params"] = {**data["params"], "extra_vars": json.dumps(extra_vars)}
        job = launch_adhoc(
            self.actor, environment=data["environment"], action=data["action"], values=data["params"],
            selector=data["selector"], strategy=data["strategy"], name=data["name"],
            timeout_seconds=data["timeout_seconds"], target_timeout_seconds=data["target_timeout_seconds"],
            emergency=data["emergency"], emergency_reason=data["emergency_reason"],
            not_before=hold_for_window(data["environment"]) if data["in_window"] else data["not_before"])
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: queued jobs end at once; running jobs once their processes are confirmed gone."""
        job = request_cancel(self.actor, self.get_object())
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={201: s.JobDetailSerializer})
    @action(detail=True, methods=["post"])
    def relaunch(self, request, pk=None):
        """Run the same plan again as a new job."""
        job = relaunch(self.actor, self.get_object())
        return Response(s.JobDetailSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("after", OpenApiTypes.INT),
                               OpenApiParameter("limit", OpenApiTypes.INT)],
                   responses=s.JobEventSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def events(self, request, pk=None):
        """Events after sequence number `after` (default 0), at most `limit` (default 1000)."""
        job = self.get_object()
        after, limit = _int(request, "after", 0), _int(request, "limit", 1000)
        if limit < 1 or limit > EVENT_PAGE_MAX:
            raise ValidationError({"limit": [f"Give 1 to {EVENT_PAGE_MAX}."]})
        rows = JobEvent.objects.filter(job=job, seq__gt=after).order_by("seq")[:limit]
        return Response([event_payload(e) for e in rows])

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def output(self, request, pk=None):
        """The job's full output as plain text, one line per event, streamed."""
        job = self.get_object()
        response = StreamingHttpResponse(iter_output(job), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}.log"'
        return response


def _int(request, name, default):
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({name: ["Give a whole number."]})


class FreezeWindowViewSet(ServiceModelViewSet):
    queryset = FreezeWindow.objects.select_related("environment")
    serializer_class = s.FreezeWindowSerializer
    filterset_class = FreezeWindowFilterSet
    ordering_fields = ["starts", "ends"]
    http_method_names = ["get", "post", "delete", "head", "options"]

    def perform_create(self, serializer):
        return create_freeze(self.actor, **serializer.validated_data)

    def perform_destroy(self, instance):
        delete_freeze(self.actor, instance)


class MaintenanceWindowViewSet(ServiceModelViewSet):
    queryset = MaintenanceWindow.objects.select_related("environment")
    serializer_class = s.MaintenanceWindowSerializer
    filterset_class = None
    ordering_fields = ["name"]

    def perform_create(self, serializer):
        return create_window(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return update_window(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        delete_window(self.actor, instance)


class JobScheduleViewSet(ServiceModelViewSet):
    """Schedules that launch templates: cron with a time zone, every N seconds, or once."""

    queryset = JobSchedule.objects.select_related("template__environment", "standing_request",
                                                  "periodic_task__crontab")
    serializer_class = s.JobScheduleSerializer
    ordering_fields = ["name", "created", "last_run_at"]

    def perform_create(self, serializer):
        return schedules.create_schedule(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return schedules.update_schedule(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        schedules.delete_schedule(self.actor, instance)

    @extend_schema(responses=s.ScheduleRunSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def runs(self, request, pk=None):
        """The last 100 firings and what came of them."""
        return Response(s.ScheduleRunSerializer(self.get_object().runs.all()[:100], many=True).data)


class SystemScheduleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                            PortalViewSet):
    """The portal's own periodic work (reaping, retention, expiry...). Administrators of all
    environments may change intervals or switch one off."""

    queryset = PeriodicTask.objects.all()
    serializer_class = s.SystemScheduleSerializer
    filterset_class = None
    ordering_fields = ["name"]
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        if not scope_for(self.request.user, Action.VIEW).everywhere:
            return PeriodicTask.objects.none()
        return PeriodicTask.objects.filter(name__in=list(periodic.builtins())).select_related("interval")

    def update(self, request, *args, **kwargs):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        task = update_builtin(self.actor, serializer.instance, enabled=data.get("enabled"),
                                       every_seconds=data.get("interval", {}).get("every"))
        return Response(s.SystemScheduleSerializer(task).data)
