from django.utils.encoding import force_str
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from ops_portal.core import counting, keyset


class Pagination(LimitOffsetPagination):
    """limit/offset pages whose `count` is bounded (core.counting): at most COUNT_CAP rows, or up to
    the end of the page asked for, are counted. Past that, `count_capped` is true and `count` is
    the bound (the list has more rows); `next` still leads on, to the last page."""

    default_limit = 50
    max_limit = 1000
    max_offset = 10**9  # PostgreSQL's OFFSET is a bigint; nobody pages this far

    def get_offset(self, request):
        return min(super().get_offset(request), self.max_offset)

    def paginate_queryset(self, queryset, request, view=None):
        self.count_capped = False
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.offset = self.get_offset(request)  # before the count: the bound reaches this page's end
        self.count = self.get_count(queryset)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        if self.count == 0 or self.offset > self.count:
            return []
        return counting.page_rows(queryset, self.offset, self.limit)

    def get_count(self, queryset):
        if not hasattr(queryset, "query"):
            return len(queryset)
        bound = min(max(counting.COUNT_CAP, self.offset + self.limit), counting.MAX_BOUND)
        source = getattr(self, "count_source", None)  # the rows before values() (RowsListMixin)
        count, self.count_capped = counting.bounded_count(queryset if source is None else source, bound)
        return count

    def get_next_link(self):
        if self.count_capped:  # more rows than counted, and the bound reaches past this page
            url = self.request.build_absolute_uri()
            url = replace_query_param(url, self.limit_query_param, self.limit)
            return replace_query_param(url, self.offset_query_param, self.offset + self.limit)
        return super().get_next_link()

    def get_paginated_response(self, data):
        return Response({"count": self.count, "count_capped": self.count_capped, "next": self.get_next_link(),
                         "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        answer = super().get_paginated_response_schema(schema)
        answer["properties"]["count"]["description"] = (
            f"Rows in the list, counted up to {counting.COUNT_CAP:,} (or to the end of the page asked for).")
        answer["properties"]["count_capped"] = {
            "type": "boolean", "description": "True when the list has more rows than `count` (the count stopped "
                                              "there); `next` still leads to the following pages."}
        answer["required"] = ["count", "count_capped", "results"]
        return answer


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
            self.legacy.count_source = getattr(self, "count_source", None)
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



