"""Filtering that refuses what it does not understand: unknown query parameters and unknown
ordering fields are 400 errors, not silently ignored; every filter value is checked before it
reaches the database (PortalFilterSet), so odd input is a field error, never a 500."""
import datetime
from decimal import Decimal

import django_filters
from django.core.exceptions import ImproperlyConfigured
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

# Parameters that belong to pagination, ordering, search and format negotiation.
GENERIC_PARAMS = {"limit", "offset", "ordering", "search", "format"}
BIGINT_MAX = 2**63 - 1


def _problem(value):
    """Why a cleaned filter value cannot go to the database (None when it can), and the value to use."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return None, value
        try:
            # PostgreSQL refuses offsets beyond ±15:59; the same instant in UTC is always fine.
            return None, value.astimezone(datetime.UTC)
        except OverflowError:
            return "This date and time is out of range.", value
    if isinstance(value, bool):
        return None, value
    if isinstance(value, int | Decimal) and abs(value) > BIGINT_MAX:
        return "This number is out of range.", value
    if isinstance(value, str) and "\x00" in value:
        return "Null characters are not allowed.", value
    if isinstance(value, list | tuple):
        for item in value:
            problem, _ = _problem(item)
            if problem:
                return problem, value
    return None, value


class _SafeValues:
    """Mixed into every filter form: values normalised (datetimes in UTC) or refused per field."""

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            problem, value = _problem(value)
            if problem:
                self.add_error(name, problem)
            else:
                cleaned[name] = value
        return cleaned


class PortalFilterSet(django_filters.FilterSet):
    """The base of every filter set of the API and pages."""

    def get_form_class(self):
        base = super().get_form_class()
        return type(base.__name__, (_SafeValues, base), {})


def is_portal_filterset(cls):
    return issubclass(cls, PortalFilterSet)


class StrictFilterBackend(DjangoFilterBackend):
    filterset_base = PortalFilterSet

    def get_filterset_class(self, view, queryset=None):
        cls = super().get_filterset_class(view, queryset)
        if cls is not None and not is_portal_filterset(cls):
            raise ImproperlyConfigured(f"{cls.__name__} must derive from PortalFilterSet (its values are checked).")
        return cls

    def filter_queryset(self, request, queryset, view):
        allowed = set(GENERIC_PARAMS) | set(getattr(view, "extra_query_params", ()))
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
        bad = sorted(name for name, values in request.query_params.lists() if any("\x00" in v for v in values))
        if bad:
            raise ValidationError({name: ["Null characters are not allowed."] for name in bad})
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


