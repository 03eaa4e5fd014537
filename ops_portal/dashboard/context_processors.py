"""Navigation for the base layout: only sections that exist and the user may see."""
from django.urls import NoReverseMatch, reverse

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import has_any

# (label, url name, action needed somewhere). Sections appear as their apps are installed.
SECTIONS = [
    ("Dashboard", "dashboard:home", Action.VIEW),
    ("Containers", "containers:home", Action.VIEW),
    ("Hosts", "inventory:hosts", Action.VIEW),
    ("Compliance", "inventory:compliance", Action.VIEW),
    ("Processes", "processes:home", Action.VIEW),
    ("Programs", "programs:home", Action.VIEW),
    ("Jobs", "jobs:list", Action.VIEW),
    ("Approvals", "approvals:inbox", Action.APPROVE),
    ("Schedules", "jobs:schedules", Action.VIEW),
    ("Monitoring", "monitoring:home", Action.VIEW),
    ("Configs", "configs:home", Action.VIEW),
    ("Projects", "projects:home", Action.VIEW),
    ("Audit log", "audit:list", Action.VIEW),
    ("Access", "access", Action.MANAGE),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_sections": []}
    sections = []
    for label, url_name, action in SECTIONS:
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        if user.is_superuser or has_any(user, action) or url_name == "dashboard:home":
            sections.append({"label": label, "url": url, "active": request.path.startswith(url) and url != "/"
                             or request.path == url})
    return {"nav_sections": sections}
