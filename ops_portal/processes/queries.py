"""Reads shared by the API and the pages: a host's process tree, top processes, the latest scan
of each host. Each is a fixed number of queries, whatever the number of processes."""
from django.db.models import OuterRef, Subquery

from .models import Process, ProcessScan

TREE_FIELDS = ("id", "pid", "ppid", "user", "name", "command", "state", "cpu_percent", "rss", "owner_kind",
               "owner_name")
ORDER = {"cpu": ("-cpu_percent", "-cpu_time", "pk"), "memory": ("-rss", "pk")}


def tree(host):
    """The host's processes as nested dicts (TREE_FIELDS + children), roots first, by pid."""
    nodes = {row["pid"]: {**row, "children": []}
             for row in Process.objects.filter(host=host).order_by("pid").values(*TREE_FIELDS)}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node["ppid"]) if node["ppid"] != node["pid"] else None
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def flat_tree(host):
    """The tree as (depth, node) in display order, for a page (no recursion in templates)."""
    rows, stack = [], [(0, node) for node in reversed(tree(host))]
    while stack:
        depth, node = stack.pop()
        rows.append((depth, node))
        stack.extend((depth + 1, child) for child in reversed(node["children"]))
    return rows


def top(queryset, by="cpu", n=10):
    return list(queryset.select_related("host").order_by(*ORDER[by])[:n])


def with_latest_scans(hosts_queryset):
    """Hosts annotated with their latest successful scan's id, time and counts, and their latest
    scan's error (one query)."""
    good = ProcessScan.objects.filter(host=OuterRef("pk"), error="").order_by("-time", "-pk")
    latest = ProcessScan.objects.filter(host=OuterRef("pk")).order_by("-time", "-pk")
    return hosts_queryset.annotate(
        scan_id=Subquery(good.values("pk")[:1]), scan_time=Subquery(good.values("time")[:1]),
        scan_count=Subquery(good.values("process_count")[:1]), scan_new=Subquery(good.values("new_count")[:1]),
        scan_gone=Subquery(good.values("gone_count")[:1]),
        scan_restarted=Subquery(good.values("restarted_count")[:1]),
        scan_error=Subquery(latest.values("error")[:1]))


def latest_scan(host):
    return ProcessScan.objects.filter(host=host, error="").order_by("-time", "-pk").first()


def last_failure(host, after=None):
    """The host's newest failed scan when it is newer than its newest good one (after)."""
    failed = ProcessScan.objects.filter(host=host).exclude(error="").order_by("-time", "-pk").first()
    if failed is None or (after is not None and failed.time <= after.time):
        return None
    return failed
