"""Helpers for server-rendered views: run a service, turn its refusals into messages."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator

from ops_portal.core import keyset
from ops_portal.core.context import Actor


def actor(request):
    return Actor.from_request(request)


def attempt(request, func, *args, form=None, success=None, **kwargs):
    """Call a service; on a validation error or a refusal show it (on the form or as a message)
    and return None. Nothing is half-applied: services run in one transaction."""
    try:
        result = func(*args, **kwargs)
    except ValidationError as exc:
        if form is not None and hasattr(exc, "error_dict"):
            for field, errors in exc.error_dict.items():
                target = field if field in form.fields else None
                for error in errors:
                    for message in error.messages:
                        form.add_error(target, message)
        else:
            messages.error(request, " ".join(exc.messages))
        return None
    except PermissionDenied as exc:
        messages.error(request, str(exc) or "You may not do that.")
        return None
    if success:
        messages.success(request, success)
    return result if result is not None else True


def paginate(request, queryset, per_page=50):
    paginator = Paginator(queryset, per_page)
    return paginator.get_page(request.GET.get("page"))


def keyset_page(request, queryset, ordering, per_page=50):
    """A page of a large append-only table by position (`?cursor=`), never counted: see
    core.keyset. A cursor this list did not make shows the first page."""
    try:
        return keyset.paginate(queryset, ordering, request.GET.get("cursor") or None, per_page)
    except keyset.InvalidCursor:
        return keyset.paginate(queryset, ordering, None, per_page)
