from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError

from ops_portal.core.api.pagination import KeysetPagination
from ops_portal.core.api.viewsets import PortalViewSet, RowsListMixin

from ..export import iter_csv, iter_jsonl
from ..filtersets import AuditEventFilterSet
from ..models import AuditEvent
from ..services import record
from .serializers import AuditEventSerializer

EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv", iter_csv),
    "jsonl": ("application/x-ndjson", "jsonl", iter_jsonl),
}


class AuditEventViewSet(RowsListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """The audit log: read-only for everyone, administrators included. Pages by cursor (newest
    first; `offset` still gives counted limit/offset pages)."""

    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilterSet
    pagination_class = KeysetPagination
    ordering_fields = ["time", "action", "actor_name"]
    extra_query_params = ("file_format", "cursor")

    @extend_schema(
        parameters=[OpenApiParameter("file_format", OpenApiTypes.STR, enum=list(EXPORT_FORMATS), required=True)],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    @action(detail=False, methods=["get"])
    def export(self, request):
        """Download the filtered audit log as CSV or JSON lines."""
        file_format = request.query_params.get("file_format", "")
        if file_format not in EXPORT_FORMATS:
            raise ValidationError({"file_format": [f"Choose one of: {', '.join(EXPORT_FORMATS)}."]})
        content_type, extension, producer = EXPORT_FORMATS[file_format]
        queryset = self.filter_queryset(self.get_queryset()).order_by("time", "pk")
        with transaction.atomic():
            record(self.actor, "audit.export", object_type="audit.auditevent",
                   object_repr=f"{file_format} export", extra={"filters": dict(request.query_params)})
        response = StreamingHttpResponse(producer(queryset), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="audit.{extension}"'
        return response
