"""Helpers for server-rendered views: run a service, turn its refusals into messages."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import ProtectedError
from django.shortcuts import redirect, render

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can_on, has_any
from ops_portal.core import counting, keyset
from ops_portal.core.context import Actor
from ops_portal.core.counting import CappedPaginator


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


def paginate(request, queryset, per_page=50, param="page"):
    """The page of `queryset` that `?page=` asks for, counted at most to COUNT_CAP rows (or to the
    end of that page): `page.paginator.capped` says there are more (see core.counting)."""
    raw = request.GET.get(param)
    paginator = CappedPaginator(queryset, per_page, wanted=counting.wanted_page(raw))
    return paginator.get_page(raw)



def require_manage(user, obj=None):
    """Refuse (403) a management page to someone who may not manage the object (its environment)
    or, for a new object, manage anywhere. The service decides again, before it writes, on the
    object as it would be: this only spares people a form they cannot use."""
    allowed = has_any(user, Action.MANAGE) if obj is None else can_on(user, Action.MANAGE, obj)
    if not allowed:
        raise PermissionDenied("Only administrators manage this.")


def form_page(request, form, save, *, obj=None, what, back, done, intro="", delete_url=None, template=None):
    """A create (obj None) or edit page: a valid form's cleaned data go to the service as keyword
    arguments; its refusals show in the form. The caller has called require_manage."""
    if request.method == "POST" and form.is_valid():
        args = (actor(request),) if obj is None else (actor(request), obj)
        saved = attempt(request, save, *args, form=form, **form.cleaned_data)
        if saved:
            messages.success(request, f"{what.capitalize()} {saved} saved.")
            return redirect(done)
    title = f"Edit {what} {obj}" if obj is not None else f"New {what}"
    return render(request, template or "_form_page.html", {"form": form, "object": obj, "title": title,
                                                           "intro": intro, "back": back, "delete_url": delete_url})


def confirm_delete(request, obj, delete, *, done, back, what=None, consequences=()):
    """GET: a page naming what goes (and what goes with it); POST: the service deletes it."""
    require_manage(request.user, obj)
    what = what or obj._meta.verbose_name
    if request.method == "POST":
        try:
            if attempt(request, delete, actor(request), obj, success=f"{what.capitalize()} {obj} deleted."):
                return redirect(done)
        except ProtectedError as exc:  # rolled back: something still points at it
            users = sorted({str(row) for row in exc.protected_objects})
            messages.error(request, f"{what.capitalize()} {obj} is still in use by {', '.join(users[:10])}"
                                    f"{' and more' if len(users) > 10 else ''}: change those first.")
        return redirect(back)
    return render(request, "_confirm_delete.html", {"object": obj, "what": what, "consequences": consequences,
                                                    "back": back})


def keyset_page(request, queryset, ordering, per_page=50):
    """A page of a large append-only table by position (`?cursor=`), never counted: see
    core.keyset. A cursor this list did not make shows the first page."""
    try:
        return keyset.paginate(queryset, ordering, request.GET.get("cursor") or None, per_page)
    except keyset.InvalidCursor:
        return keyset.paginate(queryset, ordering, None, per_page)
