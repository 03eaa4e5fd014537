"""The registry of actions jobs can run. Each level registers its actions here explicitly."""
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..params import validate_definitions

_ACTIONS: dict[str, "ActionSpec"] = {}
MODULES = ["ops_portal.jobs.actions.host", "ops_portal.jobs.actions.configs", "ops_portal.jobs.actions.monitoring"]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    label: str
    target_kind: str  # "host" today; "container", "service", "program" as those levels arrive
    parameters: list
    run: Callable  # run(ctx: TargetContext) -> schedulers.base.CommandResult
    mutating: bool = True  # changes the target: takes a lease, one job at a time
    description: str = ""
    # Names of risk tags for approval policies, computed from the parameters and target count.
    risks: Callable = field(default=lambda params, target_count: [])
    rollback: str | None = None  # action run on succeeded targets when a rollout is stopped
    prepare: Callable | None = None  # prepare(runner): open shared resources (an SSH pool) per job

    def risk_tags(self, params, target_count):
        """The action's own risk tags, plus `mutating` for every action that changes its targets
        (the tag the default production policy matches)."""
        tags = list(self.risks(params, target_count))
        return tags + ["mutating"] if self.mutating else tags


def register(spec: ActionSpec) -> ActionSpec:
    if spec.name in _ACTIONS:
        raise ValueError(f"action {spec.name} is registered twice")
    validate_definitions(spec.parameters)
    _ACTIONS[spec.name] = spec
    return spec


def get(name) -> ActionSpec | None:
    return _ACTIONS.get(name)


def all_actions() -> dict[str, ActionSpec]:
    return dict(sorted(_ACTIONS.items()))


def load_all():
    for module in MODULES:
        importlib.import_module(module)
