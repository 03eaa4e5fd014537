"""What an approver sees besides the plan, from the app that owns the subject (this app knows
nothing of jobs): per subject type, a panel for the request's page and a note for the audit row of
a decision (which dry run the approver had in front of them, in what state).

The jobs app registers for "job": the dry run of the job's action (check mode with diffs,
--noop) launched when the request opened.
"""
from collections.abc import Callable
from dataclasses import dataclass

from django.utils.safestring import mark_safe


@dataclass(frozen=True)
class Provider:
    panel: Callable  # panel(request, user, http_request) -> safe HTML ("" for nothing)
    note: Callable  # note(request) -> dict for the decision's audit row ({} for nothing)


_PROVIDERS: dict[str, Provider] = {}


def register(subject_type, *, panel, note):
    _PROVIDERS[subject_type] = Provider(panel=panel, note=note)


def panel(request, user, http_request=None):
    provider = _PROVIDERS.get(request.subject_type)
    return mark_safe(provider.panel(request, user, http_request) if provider else "")


def note(request):
    provider = _PROVIDERS.get(request.subject_type)
    return dict(provider.note(request) or {}) if provider else {}
