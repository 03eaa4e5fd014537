from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.core.web import paginate

from .filtersets import HostFilterSet
from .models import Host


@login_required
def hosts(request):
    queryset = restrict(Host.objects.select_related("environment").prefetch_related("groups"), request.user,
                        Action.VIEW)
    filterset = HostFilterSet(request.GET, queryset=queryset)
    page = paginate(request, filterset.qs if filterset.is_valid() else queryset.none())
    return render(request, "inventory/hosts.html", {"page": page, "filterset": filterset})


@login_required
def host_detail(request, pk):
    host = get_object_or_404(restrict(Host.objects.all(), request.user, Action.VIEW), pk=pk)
    return render(request, "inventory/host_detail.html", {"host": host})
