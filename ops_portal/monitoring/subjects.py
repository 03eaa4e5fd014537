"""The registry of metric rule subjects other than hosts: what a "container metric" or a "program
metric" rule watches.

Monitoring sits below the container level and imports nothing of it; the level declares which of
its objects are in a rule's scope, and where their series are, in `<app>/alert_states.py`:

    subjects.register(MetricSubjects(RuleKind.CONTAINER_METRIC, SubjectKind.CONTAINER, in_scope))

`in_scope(rule)` yields a Subject for each object of the rule's environment and name filter whose
samples can be stored (an object tied to an inventory host: series belong to hosts).
"""
import dataclasses
from collections.abc import Callable, Iterable

_KINDS = {}


@dataclasses.dataclass(frozen=True)
class Subject:
    subject_id: int
    name: str
    host_id: int  # whose series hold the object's samples
    key: str  # the series' mount: the object's key, e.g. "ctr:3:0123456789ab"
    running: bool  # whether fresh samples are expected (a stopped container sends none)
    where: str = ""  # for the summary: "(container on engine local)"


@dataclasses.dataclass(frozen=True)
class MetricSubjects:
    kind: str  # a RuleKind value
    subject_kind: str  # a SubjectKind value
    in_scope: Callable[[object], Iterable[Subject]]
    # Seconds after which a series' last sample is too old to judge (None: the hosts' setting,
    # MONITORING_STALE_SECONDS); for objects sampled less often than every minute.
    stale_after: Callable[[], int] | None = None


def register(metric_subjects):
    _KINDS[metric_subjects.kind] = metric_subjects
    return metric_subjects


def get(kind):
    """The MetricSubjects of a rule kind; LookupError when no app declares it."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise LookupError(f"no app declares the metric rule kind {kind!r}") from None
