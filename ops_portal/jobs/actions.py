"""The registry of actions jobs can run.

Each level declares its actions in `<app>/job_actions.py` (the host level's in jobs/job_actions.py,
configuration's in configs/, metrics collection's in monitoring/), loaded at start-up by
core.declarations. "Job action" is what a job runs; a permission verb is an `accounts.Action`, an
audit event an audit action (`<app>/audit_actions.py`).
"""
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from ops_portal.core import targets

from .params import validate_definitions

_ACTIONS: dict[str, "ActionSpec"] = {}


@dataclass(frozen=True)
class ActionSpec:
    name: str
    label: str
    target_kind: str  # a registered target kind (core.targets): "host" today
    parameters: list
    run: Callable | None  # run(ctx: TargetContext) -> schedulers.base.CommandResult (None: run_batch only)
    mutating: bool = True  # changes the target: takes a lease, one job at a time
    description: str = ""
    # Names of risk tags for approval policies, computed from the parameters and target count.
    risks: Callable = field(default=lambda params, target_count: [])
    rollback: str | None = None  # action run on succeeded targets when a rollout is stopped
    prepare: Callable | None = None  # prepare(runner): open shared resources (an SSH pool) per job
    # The permission verb (accounts.Action) the launcher must hold in the job's environment: "operate"
    # for operations, "manage" for actions that change configuration (a program's config, packages).
    needs: str = "operate"
    # host_check(facts, transport) -> "" or why a host cannot run the action (a tool missing from its
    # facts): such hosts are left out of the plan, and the preview names them with the reason (jobs.tools).
    host_check: Callable | None = None
    # An action that acts on a whole batch of targets at once (one ansible-playbook run with --limit of
    # the batch): run_batch(batch: runner.BatchContext) reports each target through batch.finish().
    # The strategy's batches, failure threshold, health gate and cancel apply as to any action.
    run_batch: Callable | None = None
    # freeze(public, environment) -> public: completes the plan at launch with what the parameters
    # name as it is then (a project's synced revision), so approvals and relaunches cover exactly it.
    # Raises ValidationError for input that cannot run.
    freeze: Callable | None = None
    # normalize(public) -> public: checks the parameters by themselves (no database) and writes them in
    # their canonical form (Ansible's extra vars as sorted JSON); the preview and the launch both call
    # it, before freeze. Raises ValidationError for input that cannot run.
    normalize: Callable | None = None
    # The template's own typed parameters (names the action does not define) reach the action as
    # data (Ansible's extra vars) instead of being refused.
    extra_parameters: bool = False
    # The bool parameter that makes a run read-only (check mode with diffs, --noop): when a job of the
    # action waits for approval, the same plan with it set runs at once as the dry run approvers see.
    dry_run_param: str = ""

    def risk_tags(self, params, target_count):
        """The action's own risk tags, plus `mutating` for every action that changes its targets
        (the tag the default production policy matches)."""
        tags = list(self.risks(params, target_count))
        return tags + ["mutating"] if self.mutating else tags


NAME_LENGTH = 120


def job_name(spec: ActionSpec, public: dict) -> str:
    """A job's default name: what the action does and a short form of its public parameters
    ("Run a command: uname -a", "Scale a service: replicas=3"); secrets are never in `public`."""
    shown = []
    for definition in spec.parameters:
        value = public.get(definition["name"])
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
        shown.append(text if len(spec.parameters) == 1 else f"{definition['name']}={text}")
    summary = " ".join(" ".join(shown).split())  # one line
    if not summary:
        return spec.label
    name = f"{spec.label}: {summary}"
    return name if len(name) <= NAME_LENGTH else name[:NAME_LENGTH - 1] + "…"


def register(spec: ActionSpec) -> ActionSpec:
    if spec.name in _ACTIONS:
        raise ValueError(f"action {spec.name} is registered twice")
    validate_definitions(spec.parameters)
    if spec.run is None and spec.run_batch is None:
        raise ValueError(f"action {spec.name} has neither run nor run_batch")
    if targets.get(spec.target_kind) is None:
        raise ValueError(f"action {spec.name}: no target kind {spec.target_kind!r} is registered")
    _ACTIONS[spec.name] = spec
    return spec


def get(name) -> ActionSpec | None:
    return _ACTIONS.get(name)


def all_actions() -> dict[str, ActionSpec]:
    return dict(sorted(_ACTIONS.items()))
