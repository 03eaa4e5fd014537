"""Template tags other apps' pages use to show programs (inventory sits below and does not import them)."""
from django import template

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can
from ops_portal.inventory.choices import Transport

from ..models import HostManager, Program

register = template.Library()


@register.simple_tag(takes_context=True)
def host_programs(context, host, limit=30):
    """A host's process managers and its programs (crash loops first) for the host page; the page
    has already checked that the user sees the host."""
    request = context.get("request")
    managers = list(HostManager.objects.filter(host=host).order_by("manager"))
    programs = Program.objects.filter(host=host).order_by("-crash_loop", "manager", "name")
    count = programs.count()
    install_refusal = ""
    if request is None or not can(request.user, Action.MANAGE, host.environment_id):
        install_refusal = "An administrator of this environment can install supervisord here."
    elif host.transport == Transport.LOCAL:
        install_refusal = "This is the portal's own machine: install supervisord with its package manager."
    return {
        "managers": managers, "programs": list(programs[:limit]), "count": count, "more": count > limit,
        "any_available": any(m.available for m in managers),
        "checked": max((m.checked for m in managers if m.checked), default=None),
        "install_refusal": install_refusal,
    }
