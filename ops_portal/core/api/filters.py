"""Filtering that refuses what it does not understand: unknown query parameters and unknown
ordering fields are 400 errors, not silently ignored."""
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

# Parameters that belong to pagination, ordering, search and format negotiation.
GENERIC_PARAMS = {"limit", "offset", "ordering", "search", "format"}


class StrictFilterBackend(DjangoFilterBackend):
    def filter_queryset(self, request, queryset, view):
        allowed = set(GENERIC_PARAMS) | set(getattr(view, "extra_query_params", ()))
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
        if "ordering" in request.query_params:
            StrictOrderingFilter().validate(request, queryset, view)
        return super().filter_queryset(request, queryset, view)


class StrictOrderingFilter(OrderingFilter):
    def validate(self, request, queryset, view):
        params = [p.strip() for p in request.query_params.get(self.ordering_param, "").split(",") if p.strip()]
        valid = {item[0] for item in self.get_valid_fields(queryset, view, {"request": request})}
        bad = [p for p in params if p.lstrip("-") not in valid]
        if bad:
            allowed = ", ".join(sorted(valid))
            raise ValidationError({"ordering": [f"Cannot order by {', '.join(bad)}. Allowed: {allowed}."]})
