"""Template tags other apps' pages use to show jobs (they sit below jobs and do not import it)."""
from django import template

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict

from ..models import Job

register = template.Library()


@register.simple_tag(takes_context=True)
def object_jobs(context, kind, ref_id, limit=20):
    """The newest jobs that acted on one object, restricted to the environments the user may view
    (an object that moved between environments keeps jobs of the one it left)."""
    request = context.get("request")
    if request is None:
        return Job.objects.none()
    jobs = Job.objects.filter(targets__kind=kind, targets__ref_id=ref_id)
    return restrict(jobs, request.user, Action.VIEW).select_related("environment").order_by("-created")[:limit]
