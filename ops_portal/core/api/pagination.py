from django.utils.encoding import force_str
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from ops_portal.core import keyset


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000
    max_offset = 10**9  # PostgreSQL's OFFSET is a bigint; nobody pages this far

    def get_offset(self, request):
        return min(super().get_offset(request), self.max_offset)


class KeysetPagination(BasePagination):
    """Pages of the large append-only tables by position (`?cursor=`, from the `next` and
    `previous` links) and `?limit=`: no count, no skipped rows, the same cost on every page.

    The ordering is the view's (`?ordering=` among its `ordering_fields`, else the model's), with
    the primary key as tie-breaker. A request that names `offset` gets the older limit/offset page
    with its `count`, for clients written against it; its cost grows with the offset."""

    cursor_query_param = "cursor"
    limit_query_param = "limit"
    default_limit = Pagination.default_limit
    max_limit = Pagination.max_limit

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        if "offset" in request.query_params:
            self.legacy = Pagination()
            return self.legacy.paginate_queryset(queryset, request, view)
        self.legacy = None
        self.limit = self.get_limit(request)
        ordering = list(queryset.query.order_by) or list(queryset.model._meta.ordering)
        try:
            keyset.parse_ordering(queryset.model, ordering)
        except ValueError:
            raise ValidationError({"ordering": ["Give one field to order this list by."]}) from None
        if len(ordering) == 1:
            ordering.append("-pk" if ordering[0].startswith("-") else "pk")
        cursor = request.query_params.get(self.cursor_query_param)
        try:
            self.page = keyset.paginate(queryset, ordering, cursor, self.limit)
        except keyset.InvalidCursor as exc:
            raise ValidationError({self.cursor_query_param: [str(exc)]}) from None
        return self.page.rows

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw in (None, ""):
            return self.default_limit
        try:
            limit = int(raw)
        except ValueError:
            raise ValidationError({self.limit_query_param: ["A whole number is required."]}) from None
        if limit < 1:
            raise ValidationError({self.limit_query_param: ["Ensure this value is at least 1."]})
        return min(limit, self.max_limit)

    def _link(self, cursor):
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, cursor)

    def get_next_link(self):
        return self._link(self.page.next_cursor)

    def get_previous_link(self):
        return self._link(self.page.previous_cursor)

    def get_paginated_response(self, data):
        if self.legacy is not None:
            return self.legacy.get_paginated_response(data)
        return Response({"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "previous": {"type": "string", "nullable": True, "format": "uri"},
                "count": {"type": "integer", "description": "Only with `offset` (the older limit/offset pages)."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query",
             "description": force_str("Where the page starts: the cursor of a `next` or `previous` link."),
             "schema": {"type": "string"}},
            {"name": self.limit_query_param, "required": False, "in": "query",
             "description": f"Rows per page (default {self.default_limit}, at most {self.max_limit}).",
             "schema": {"type": "integer"}},
            {"name": "offset", "required": False, "in": "query",
             "description": "Older limit/offset pages with a count; slower the further they go. Prefer `cursor`.",
             "schema": {"type": "integer"}},
        ]



