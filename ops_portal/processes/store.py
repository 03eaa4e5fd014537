"""Scans into the database: each host's latest process list, replaced in bulk, and the scan row
with what changed since the scan before.

Observations, like host facts: rows written from a scan are not audited (the scan job is). A
store is a handful of queries per host whatever its process count: lock the host, read the ids
of its rows, insert the scan, delete the rows, insert the new ones (ids kept for the processes
that lived through), prune old scans; where program metric rules watch, the samples of the host's
running programs (programs/metrics.py).
"""
import datetime

from django.db import transaction
from django.utils import timezone

from ops_portal.core import streams
from ops_portal.inventory.models import Host
from ops_portal.monitoring import metrics as monitoring_metrics
from ops_portal.programs import metrics as program_metrics
from schedulers.process.inventory import START_TOLERANCE, Proc, Snapshot

from .choices import CHANGES_KEPT, SCANS_KEPT
from .models import Process, ProcessScan

BATCH = 2000


def group(environment_id):
    return f"processes.env.{environment_id}"


def previous_snapshots(host_ids):
    """{host id: Snapshot} of each host's latest stored scan (the basis of CPU deltas and changes);
    hosts never scanned are missing."""
    scans = {}
    for scan in ProcessScan.objects.filter(host_id__in=host_ids, error="").order_by("host_id", "-time", "-pk"):
        scans.setdefault(scan.host_id, scan)
    snapshots = {host_id: Snapshot(host=str(host_id), collected_at=scan.time.timestamp(), boot_time=scan.boot_time,
                                   source=scan.source, cpu_basis=scan.cpu_basis, container="")
                 for host_id, scan in scans.items()}
    fields = ("host_id", "pid", "ppid", "user", "name", "cmdline", "state", "cpu_time", "cpu_percent", "rss",
              "threads", "fds", "start_time", "ports", "owner_kind", "owner_name", "main", "container_id")
    for row in Process.objects.filter(host_id__in=list(snapshots)).values_list(*fields).iterator(chunk_size=5000):
        (host_id, pid, ppid, user, name, cmdline, state, cpu_time, cpu_percent, rss, threads, fds, start, ports,
         owner_kind, owner_name, main, container) = row
        snapshots[host_id].processes.append(Proc(
            pid=pid, ppid=ppid, user=user, name=name, cmdline=cmdline, state=state, cpu_time=cpu_time,
            cpu_percent=cpu_percent, rss=rss, threads=threads, fds=fds, started_at=start,
            ports=[tuple(p) for p in ports], owner=(owner_kind, owner_name) if owner_kind else None, main=main,
            container=container))
    return snapshots


def _changes(diff):
    if diff is None:
        return {}
    return {"new": [[p.pid, p.name] for p in diff.new[:CHANGES_KEPT]],
            "gone": [[p.pid, p.name] for p in diff.gone[:CHANGES_KEPT]],
            "restarted": [[old.pid, new.pid, new.name] for old, new in diff.restarted[:CHANGES_KEPT]]}


def _row(host_id, proc, pk):
    owner_kind, owner_name = proc.owner or ("", "")
    return Process(
        pk=pk, host_id=host_id, pid=proc.pid, ppid=proc.ppid, user=proc.user[:64], name=proc.name[:128],
        cmdline=proc.cmdline, command=proc.command, state=proc.state[:2], cpu_percent=proc.cpu_percent,
        cpu_time=proc.cpu_time, rss=proc.rss, threads=proc.threads, fds=proc.fds, start_time=proc.started_at,
        ports=[list(p) for p in proc.ports], port_list=(" " + " ".join(str(p) for _, p in proc.ports) + " ")[:500]
        if proc.ports else "", owner_kind=owner_kind, owner_name=owner_name[:255], main=proc.main,
        container_id=proc.container[:64])


def store_scan(host_id, snapshot, diff=None, *, job_id=None, program_samples=None):
    """Replace the host's processes with the snapshot's and record the scan; None when the host is
    gone or a newer scan is stored already (two scans that crossed). `program_samples`: whether a
    program metric rule of the host's environment wants its programs' samples (None: look)."""
    when = datetime.datetime.fromtimestamp(snapshot.collected_at, tz=datetime.UTC)
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(pk=host_id).only("pk", "environment_id", "name").first()
        if host is None:
            return None
        if ProcessScan.objects.filter(host_id=host_id, error="", time__gte=when).exists():
            return None
        ids = {}
        for pk, pid, start in Process.objects.filter(host_id=host_id).values_list("pk", "pid", "start_time"):
            ids[pid] = (pk, start)
        scan = ProcessScan.objects.create(
            host_id=host_id, time=when, source=snapshot.source, cpu_basis=snapshot.cpu_basis,
            boot_time=snapshot.boot_time, process_count=len(snapshot.processes), elapsed=round(snapshot.elapsed, 3),
            bytes=snapshot.payload_bytes, new_count=len(diff.new) if diff else 0,
            gone_count=len(diff.gone) if diff else 0, restarted_count=len(diff.restarted) if diff else 0,
            changes=_changes(diff), first=diff is None, job_id=job_id)
        rows = []
        for proc in snapshot.processes:
            known = ids.get(proc.pid)
            same = known is not None and abs(known[1] - proc.started_at) <= START_TOLERANCE
            rows.append(_row(host_id, proc, known[0] if same else None))
        Process.objects.filter(host_id=host_id).delete()
        Process.objects.bulk_create(rows, batch_size=BATCH)
        if program_samples is None:
            program_samples = program_metrics.watched(host.environment_id)
        if program_samples:  # program metric rules read these
            samples = program_metrics.scan_samples(host_id, snapshot)
            if samples:
                monitoring_metrics.store([(host_id, int(snapshot.collected_at), samples)])
        _prune(host_id)
        event = _event(host, scan)
        transaction.on_commit(lambda: streams.publish(group(host.environment_id), event))
    return scan


def store_failure(host_id, error, *, job_id=None):
    """Record a scan that failed; the host's processes stay as the last good scan saw them."""
    with transaction.atomic():
        host = Host.objects.filter(pk=host_id).only("pk", "environment_id", "name").first()
        if host is None:
            return None
        scan = ProcessScan.objects.create(host_id=host_id, time=timezone.now(), error=str(error)[:500], job_id=job_id)
        _prune(host_id)
        event = _event(host, scan)
        transaction.on_commit(lambda: streams.publish(group(host.environment_id), event))
    return scan


def _prune(host_id):
    cutoff = (ProcessScan.objects.filter(host_id=host_id).order_by("-time", "-pk")
              .values_list("time", flat=True)[SCANS_KEPT:SCANS_KEPT + 1])
    if cutoff:
        ProcessScan.objects.filter(host_id=host_id, time__lte=cutoff[0]).delete()


def _event(host, scan):
    return {"kind": "scan", "host": host.pk, "host_name": host.name, "scan": scan.pk, "time": scan.time.isoformat(),
            "process_count": scan.process_count, "new": scan.new_count, "gone": scan.gone_count,
            "restarted": scan.restarted_count, "error": scan.error}
