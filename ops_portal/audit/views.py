from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.core.web import keyset_page

from .filtersets import AuditEventFilterSet
from .models import AuditEvent
from .registry import all_actions


@login_required
def audit_list(request):
    queryset = restrict(AuditEvent.objects.all(), request.user, Action.VIEW)
    filterset = AuditEventFilterSet(request.GET, queryset=queryset, request=request)
    rows = filterset.qs if filterset.is_valid() else queryset.none()
    page = keyset_page(request, rows, ["-time", "-pk"])
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("cursor", None)
    context = {"page": page, "filterset": filterset, "actions": all_actions(), "query": params.urlencode()}
    template = "audit/_rows.html" if request.headers.get("HX-Request") else "audit/list.html"
    return render(request, template, context)


@login_required
def audit_detail(request, pk):
    event = get_object_or_404(restrict(AuditEvent.objects.all(), request.user, Action.VIEW), pk=pk)
    return render(request, "audit/detail.html", {"event": event})
