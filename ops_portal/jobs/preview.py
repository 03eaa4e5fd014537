"""What a launch would do, worked out without creating anything: the action and its parameters
(secrets masked), the targets its selector matches now, the strategy in batches, and the approval
policy that would apply (asked of the gating layer). The launch pages show it before Launch, and
ask for a confirmation naming the count when the work is destructive or hits several targets."""
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from ops_portal.core import targets as target_kinds

from . import limits, params, tools
from . import strategy as strategies
from .gating import requirement_for
from .launch import MAX_TARGETS, check_launch, template_values

SHOWN_TARGETS = 20  # names listed; the count is always exact


@dataclass(frozen=True)
class Preview:
    environment: object
    spec: object
    template: object
    params: dict  # secrets replaced by params.SECRET_MARK
    count: int
    names: list  # the first SHOWN_TARGETS names, in plan order
    strategy: dict
    batches: int
    risks: list
    requirement: object  # approvals Requirement, or None: runs without approval
    excluded: list = ()  # [{"name", "reason"}]: matched hosts that cannot run the action (jobs.tools)

    @property
    def destructive(self):
        return "destructive" in self.risks

    @property
    def needs_confirmation(self):
        """Destructive work, or work on more than one target, is confirmed by naming its count."""
        return self.destructive or self.count > 1

    @property
    def more(self):
        return self.count - len(self.names)


def matching(selector, environment, spec=None):
    """(count, first names, first hosts left out with the reason) of the targets a selector matches now in
    the environment, for `spec` when given (hosts that cannot run it are left out: jobs.tools)."""
    entries = target_kinds.resolve(selector, environment)
    excluded = []
    if spec is not None:
        entries, excluded = tools.split(spec, entries)
    return len(entries), [e["name"] for e in entries[:SHOWN_TARGETS]], excluded[:SHOWN_TARGETS]


def preview(actor, environment, spec, *, selector, strategy=None, values=None, template=None, limit=None):
    """The Preview of launching `spec` (from `template` when given) on what `selector` matches.

    Raises the ValidationError or PermissionDenied the launch itself would raise."""
    check_launch(actor, environment, emergency=False, emergency_reason="")
    if template is not None and not template.enabled:
        raise ValidationError({"template": ["This template is disabled."]})
    if template is not None:
        public, secret = template_values(template, spec, values)
    else:
        public, secret = params.clean_values(spec.parameters, values)
    clean_strategy = strategies.validate(strategy)
    entries = target_kinds.resolve(selector or {}, environment)
    if not entries:
        raise ValidationError({"selector": ["The selector matches no enabled target in this environment."]})
    entries = limits.narrow(entries, limit)
    strays = sorted({e["kind"] for e in entries} - {spec.target_kind})
    if strays:
        raise ValidationError({"selector": [f"{spec.name} acts on {spec.target_kind} targets, not on "
                                            f"{', '.join(strays)}."]})
    entries, excluded = tools.split(spec, entries)
    tools.refuse_if_none_left(spec, entries, excluded)
    if len(entries) > MAX_TARGETS:
        raise ValidationError({"selector": [f"At most {MAX_TARGETS} targets per job."]})
    if spec.normalize is not None:  # the parameters as the launch writes them into the plan
        public = spec.normalize(dict(public))
    values = {**public, **secret}
    return Preview(
        environment=environment, spec=spec, template=template, params=params.redacted(public, secret),
        count=len(entries), names=[e["name"] for e in entries[:SHOWN_TARGETS]], strategy=clean_strategy,
        batches=len(strategies.batches(len(entries), clean_strategy)), risks=spec.risk_tags(values, len(entries)),
        requirement=requirement_for(actor, environment, spec, values, len(entries), template),
        excluded=excluded[:SHOWN_TARGETS])
