"""The global search: one box, results by kind, only what the user may view.

Each kind is one bounded query: a case-insensitive prefix match on the name (or the number of a
job: "#42" or "42"), restricted by the permission layer, at most `limit` + 1 rows (the extra row
only says "more"). On PostgreSQL the prefix matches use the expression indexes of this app's
migration 0001, so a search costs the same with 10 or 200,000 processes.
"""
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.urls import reverse

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import restrict
from ops_portal.containers.models import Container, Service
from ops_portal.inventory.models import Host
from ops_portal.jobs.models import Job, JobTemplate
from ops_portal.processes.models import Process
from ops_portal.programs.models import Program

LIMIT = 10
MAX_QUERY = 100


@dataclass
class Hit:
    name: str
    url: str
    detail: str = ""
    environment: str = ""


@dataclass
class Group:
    kind: str
    label: str
    hits: list = field(default_factory=list)
    more: bool = False
    more_url: str = ""


def _hosts(qs, text):
    rows = qs.filter(name__istartswith=text).select_related("environment")
    return rows, lambda h: Hit(h.name, reverse("inventory:host", args=[h.pk]), h.get_reachability_display(),
                               h.environment.name)


def _containers(qs, text):
    rows = qs.filter(name__istartswith=text).select_related("engine__environment")
    return rows, lambda c: Hit(c.name, reverse("containers:container", args=[c.pk]),
                               f"{c.state or 'unknown'} on {c.engine.name}", c.engine.environment.name)


def _services(qs, text):
    rows = qs.filter(name__istartswith=text).select_related("engine__environment")
    return rows, lambda s: Hit(s.name, reverse("containers:service", args=[s.pk]),
                               f"{s.replicas_running or 0}/{s.replicas_desired or 0} on {s.engine.name}",
                               s.engine.environment.name)


def _programs(qs, text):
    rows = qs.filter(name__istartswith=text).select_related("host__environment")
    return rows, lambda p: Hit(p.name, reverse("programs:detail", args=[p.pk]),
                               f"{p.manager} · {p.state} on {p.host.name}", p.host.environment.name)


def _processes(qs, text):
    rows = qs.filter(name__istartswith=text).select_related("host__environment")
    return rows, lambda p: Hit(p.name, reverse("processes:detail", args=[p.pk]),
                               f"pid {p.pid} on {p.host.name}", p.host.environment.name)


def _jobs(qs, text):
    number = text.removeprefix("#")
    if number.isdigit() and len(number) < 18:
        rows = qs.filter(pk=int(number))
    else:
        rows = qs.filter(name__istartswith=text)
    return rows.select_related("environment"), lambda j: Hit(
        f"#{j.pk} {j.name}", reverse("jobs:detail", args=[j.pk]), j.get_state_display(), j.environment.name)


def _templates(qs, text):
    rows = qs.filter(name__istartswith=text).select_related("environment")
    return rows, lambda t: Hit(t.name, reverse("jobs:launch", args=[t.pk]), t.action, t.environment.name)


# (key, label, model, search, list page with the whole result where one filters by name)
KINDS = [
    ("hosts", "Hosts", Host, _hosts, ("inventory:hosts", "name")),
    ("containers", "Containers", Container, _containers, ("containers:home", "name")),
    ("services", "Services", Service, _services, None),
    ("programs", "Programs", Program, _programs, ("programs:home", "q")),
    ("processes", "Processes", Process, _processes, ("processes:home", "q")),
    ("jobs", "Jobs", Job, _jobs, None),
    ("templates", "Job templates", JobTemplate, _templates, None),
]


def clean(text):
    return (text or "").strip()[:MAX_QUERY]


def search(user, text, limit=LIMIT):
    """[Group] of every kind with hits for `text`, in the order of KINDS (one query per kind)."""
    text = clean(text)
    if not text:
        return []
    groups = []
    for key, label, model, find, listing in KINDS:
        rows, hit = find(restrict(model.objects.all(), user, Action.VIEW), text)
        # No ordering: the prefix index answers the first matches without sorting every one of them.
        found = list(rows.order_by()[:limit + 1])
        if not found:
            continue
        found.sort(key=lambda obj: (str(obj.name).lower() != text.lower(), str(obj.name).lower(), obj.pk))
        group = Group(key, label, [hit(obj) for obj in found[:limit]], more=len(found) > limit)
        if group.more and listing:
            group.more_url = f"{reverse(listing[0])}?{urlencode({listing[1]: text})}"
        groups.append(group)
    return groups
