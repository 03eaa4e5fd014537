"""The process level's rule kinds: programs not RUNNING (a state rule, monitoring.states, read from
the rows the program refreshes keep current), and program metrics (monitoring.subjects: the sums
of a program's processes, written by process scans, programs/metrics.py)."""
from ops_portal.monitoring import states, subjects
from ops_portal.monitoring.choices import RuleKind, SubjectKind

from . import metrics
from .choices import ProgramState
from .models import Program

# Unknown: the last refresh could not tell (its host unreachable); that is the host's alert.
NOT_FAILING = (ProgramState.RUNNING, ProgramState.UNKNOWN)
DATED = (ProgramState.STOPPED, ProgramState.EXITED, ProgramState.FATAL)


def _programs(rule):
    """The programs of the rule's enabled hosts, narrowed by its host group and tag."""
    queryset = Program.objects.filter(host__environment_id=rule.environment_id, host__enabled=True)
    if rule.group_id:
        queryset = queryset.filter(host__groups=rule.group_id)
    return queryset


def _tagged(rule, tags):
    return not rule.tag or rule.tag in (tags or [])


def failing_programs(rule):
    rows = (_programs(rule).exclude(state__in=NOT_FAILING)
            .values_list("pk", "name", "state", "exit_code", "exit_at", "stopped_at", "started_at", "host_id",
                         "host__name", "host__tags"))
    for pk, name, state, exit_code, exit_at, stopped_at, started_at, host_id, host_name, tags in rows:
        if not _tagged(rule, tags):
            continue
        # Since when, from the manager's own stop or exit time (the later: an older one may be of
        # an earlier run); a program restarting, starting or absent counts from the first sight.
        times = [t for t in (stopped_at, exit_at) if t is not None]
        since = max(times) if times and state in DATED else None
        if since is not None and started_at is not None and since < started_at:
            since = None  # a manager that did not date this stop: the time is of an earlier run
        detail = ProgramState(state).label.lower() if state in ProgramState.values else state
        if exit_code is not None and state in (ProgramState.EXITED, ProgramState.FATAL):
            detail += f", exit code {exit_code}"
        yield states.Failing(pk, name, detail, host_id=host_id, since=since, where=f"(program on {host_name})")


def programs_in_scope(rule, ids):
    return {pk: name for pk, name, tags in _programs(rule).filter(pk__in=ids).values_list("pk", "name", "host__tags")
            if _tagged(rule, tags)}


states.register(states.StateKind(RuleKind.PROGRAM_NOT_RUNNING, SubjectKind.PROGRAM, failing_programs,
                                 programs_in_scope))


def program_metric_subjects(rule):
    """The programs of the rule's enabled hosts (narrowed by its host group and tag): each one's
    series are its host's, keyed by the program."""
    rows = _programs(rule).values_list("pk", "name", "host_id", "state", "host__name", "host__tags")
    for pk, name, host_id, state, host_name, tags in rows:
        if _tagged(rule, tags):
            yield subjects.Subject(pk, name, host_id, metrics.metric_key(pk), running=state == ProgramState.RUNNING,
                                   where=f"(program on {host_name})")


subjects.register(subjects.MetricSubjects(RuleKind.PROGRAM_METRIC, SubjectKind.PROGRAM, program_metric_subjects,
                                          stale_after=metrics.stale_after))
