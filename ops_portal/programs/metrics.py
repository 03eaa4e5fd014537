"""Program metrics: what a program's processes use, summed, from each process scan of its host.

A process scan (processes.scan, every 5 minutes by default) knows which program owns each process
(the collector follows supervisord's and PM2's children and systemd's cgroups, descendants
included); each running program of the host gets one sample of the CPU % (of one CPU) and the
resident memory of all its processes, stored in the series of its host with the program's key as
`mount` ("prog:<id>"), where program metric rules read them (monitoring.subjects, declared in
alert_states.py). Written only for environments with an enabled program metric rule: the rows
cost nothing where nobody watches them. A scan whose CPU figures are averages since each process
started (the first scan of a host without psutil's interval) gives memory only.
"""
from collections import defaultdict

from django.conf import settings

from ops_portal.monitoring.choices import ProgramMetric, RuleKind
from ops_portal.monitoring.models import AlertRule

from .choices import Manager, ProgramState
from .models import Program

LIFETIME = "lifetime"  # schedulers.process.inventory: CPU % averaged since each process started
SCAN_SECONDS = 300  # the built-in "processes: scan" schedule


def metric_key(program_id):
    return Program(pk=program_id).metric_key


def stale_after():
    """Seconds after which a program's last sample is too old to judge: two scan periods and a
    minute (PROGRAM_METRICS_STALE_SECONDS when the scan schedule was changed)."""
    return getattr(settings, "PROGRAM_METRICS_STALE_SECONDS", 2 * SCAN_SECONDS + 60)


def watched(environment_id):
    return AlertRule.objects.filter(environment_id=environment_id, kind=RuleKind.PROGRAM_METRIC,
                                    enabled=True).exists()


def _owner_names(manager, name):
    """The owner names a scan gives a program's processes (see services.program_for_process)."""
    if manager == Manager.SYSTEMD:
        return [f"{name}.service", name]
    return [name]


def _program_of(owner, names):
    kind, name = owner
    if kind == Manager.SUPERVISORD:
        group, _, process = name.partition(":")
        for candidate in (name, group, process or group):
            found = names.get((kind, candidate))
            if found is not None:
                return found
        return None
    return names.get((kind, name))


def scan_samples(host_id, snapshot):
    """[(metric, mount, value)] of the host's running programs from a scan (schedulers.process.
    inventory.Snapshot), for monitoring.metrics.store at the scan's time."""
    programs = list(Program.objects.filter(host_id=host_id, state=ProgramState.RUNNING)
                    .values_list("pk", "manager", "name", "pids"))
    if not programs:
        return []
    names, by_pid = {}, {}
    for pk, manager, name, pids in programs:
        for owner_name in _owner_names(manager, name):
            names[(manager, owner_name)] = pk
        for pid in pids or ():
            if isinstance(pid, int):
                by_pid[pid] = pk
    members = defaultdict(set)  # program id -> pids of its processes
    children = defaultdict(list)
    for proc in snapshot.processes:
        children[proc.ppid].append(proc.pid)
        program = _program_of(proc.owner, names) if proc.owner and proc.owner[0] in Manager.values else None
        if program is not None:
            members[program].add(proc.pid)
    # A program the scan found no owner for (a manager the collector could not see through): its
    # manager's pids and their descendants.
    present = {proc.pid for proc in snapshot.processes}
    for pid, program in by_pid.items():
        if program in members or pid not in present:
            continue
        stack = [pid]
        while stack:
            current = stack.pop()
            if current not in members[program]:
                members[program].add(current)
                stack.extend(children.get(current, ()))
    procs = snapshot.by_pid()
    rows = []
    with_cpu = snapshot.cpu_basis != LIFETIME
    for program, pids in members.items():
        found = [procs[pid] for pid in pids if pid in procs]
        if not found:
            continue
        key = metric_key(program)
        if with_cpu:
            rows.append((ProgramMetric.CPU_PERCENT, key, round(sum(p.cpu_percent for p in found), 2)))
        rows.append((ProgramMetric.MEM_BYTES, key, float(sum(p.rss for p in found))))
    return rows
