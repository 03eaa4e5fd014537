"""The registry of state rule kinds: what a "container not running", "service short of tasks" or
"program not running" rule looks at.

Monitoring sits below the container and process levels and imports nothing of them; each level
declares the kinds it owns in `<app>/alert_states.py` (loaded at start-up by core.declarations):

    states.register(StateKind(RuleKind.PROGRAM_NOT_RUNNING, SubjectKind.PROGRAM, failing, in_scope))

`failing(rule)` returns a Failing for each object in the rule's scope (its environment, name
filter and, for programs, host group and tag) that is in the bad state now, as the database has it
(the container watcher and program refreshes keep it current); `in_scope(rule, ids)` says which
of those subject ids still exist in the rule's scope, as {id: name} (so a resolution can say why).
"""
import dataclasses
import datetime
import fnmatch
from collections.abc import Callable, Iterable

_KINDS = {}


@dataclasses.dataclass(frozen=True)
class Failing:
    """One object in a bad state. `since`: when it went bad by its own row's timestamps (an exit or
    stop time), None when the row keeps none (the evaluation then counts from its first sight)."""

    subject_id: int
    name: str
    detail: str  # what is wrong, for the summary: "exited (code 137)", "1 of 3 tasks running"
    host_id: int | None = None
    since: datetime.datetime | None = None
    where: str = ""  # where it is, for the summary: "on engine local", "on web-1"


@dataclasses.dataclass(frozen=True)
class StateKind:
    kind: str  # a RuleKind value
    subject_kind: str  # a SubjectKind value
    failing: Callable[[object], Iterable[Failing]]
    in_scope: Callable[[object, set], dict]
    recovered: str = "is running again"  # the resolution's words when the subject is fine again


def register(state_kind):
    _KINDS[state_kind.kind] = state_kind
    return state_kind


def get(kind):
    """The StateKind of a rule kind; LookupError when no app declares it."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise LookupError(f"no app declares the state rule kind {kind!r}") from None


def name_matches(rule, name):
    """Does `name` pass the rule's name filter (a case-sensitive glob; empty: everything)?"""
    return not rule.name_filter or fnmatch.fnmatchcase(name, rule.name_filter)
