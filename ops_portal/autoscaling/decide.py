"""The scaling decision of one evaluation: a pure function of the policy's numbers, the service's
replicas, the metric's value and when the service was last scaled (no Django, no engine).

Target tracking: desired = ceil(replicas × value ÷ target) for a per-replica value (CPU % of the
tasks), ceil(value ÷ target) for a service-wide total; held while the value is within the
tolerance of the target. Thresholds: one step up above the upper value, one step down below the
lower one. Then the step limits, the min/max clamp and the cooldowns, in that order; a service
outside [min, max] is brought back inside whatever the metric says (cooldowns still apply).
"""
import math
from dataclasses import dataclass, field

HOLD, SCALE_UP, SCALE_DOWN, NO_METRIC = "hold", "scale_up", "scale_down", "no_metric"


@dataclass(frozen=True)
class Rules:
    min_replicas: int
    max_replicas: int
    mode: str = "target"  # "target" or "thresholds"
    target: float | None = None
    tolerance: float = 0.1  # a fraction of the target
    total: bool = False  # the value is a total for the service, not a per-replica figure
    scale_up_above: float | None = None
    scale_down_below: float | None = None
    max_step_up: int = 4
    max_step_down: int = 1
    up_cooldown: float = 60.0  # seconds since the last scaling before the next scale-up
    down_cooldown: float = 300.0  # seconds since the last scaling before the next scale-down


@dataclass
class Decision:
    action: str  # HOLD, SCALE_UP, SCALE_DOWN, NO_METRIC
    current: int
    desired: int
    reason: str
    wanted: int | None = None  # what the metric asked for before limits and cooldowns
    notes: list = field(default_factory=list)

    @property
    def scales(self):
        return self.action in (SCALE_UP, SCALE_DOWN)


def _fmt(value):
    return f"{value:.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def metric_wants(rules, current, value):
    """(replicas the metric asks for, why) before step limits, clamp and cooldowns."""
    if rules.mode == "thresholds":
        if rules.scale_up_above is not None and value > rules.scale_up_above:
            return current + rules.max_step_up, f"{_fmt(value)} is above {_fmt(rules.scale_up_above)}"
        if rules.scale_down_below is not None and value < rules.scale_down_below:
            return current - rules.max_step_down, f"{_fmt(value)} is below {_fmt(rules.scale_down_below)}"
        return current, f"{_fmt(value)} is between the thresholds"
    target = rules.target
    if rules.total:
        wanted = math.ceil(round(value / target, 6))
        return wanted, f"{_fmt(value)} ÷ target {_fmt(target)} per replica"
    ratio = value / target
    if current > 0 and abs(ratio - 1.0) <= rules.tolerance:
        return current, f"{_fmt(value)} is within {_fmt(rules.tolerance * 100)}% of the target {_fmt(target)}"
    if current == 0:
        return (1 if value > 0 else 0), f"no replica runs; {_fmt(value)} against target {_fmt(target)}"
    # round() first: 3 × 60 ÷ 60 must be 3, not 3.0000000000000004 → 4.
    return math.ceil(round(current * ratio, 6)), f"{current} × {_fmt(value)} ÷ target {_fmt(target)}"


def decide(rules, *, current, value, since_last_scale=None):
    """The decision for a service running `current` replicas whose metric reads `value` (None: no
    reading). since_last_scale: seconds since the policy last scaled it (None: never)."""
    if value is None:
        if current < rules.min_replicas or current > rules.max_replicas:
            wanted, why = current, "no metric reading"
        else:
            return Decision(NO_METRIC, current, current, "no metric reading: nothing changed")
    else:
        wanted, why = metric_wants(rules, current, value)
    notes = []
    desired = wanted
    if desired > current + rules.max_step_up:
        desired = current + rules.max_step_up
        notes.append(f"step limit +{rules.max_step_up}")
    elif desired < current - rules.max_step_down:
        desired = current - rules.max_step_down
        notes.append(f"step limit -{rules.max_step_down}")
    if desired > rules.max_replicas:
        desired = rules.max_replicas
        notes.append(f"maximum {rules.max_replicas}")
    if desired < rules.min_replicas:
        desired = rules.min_replicas
        notes.append(f"minimum {rules.min_replicas}")
    reason = f"{why}: {wanted} wanted" + (f", {', '.join(notes)}" if notes else "")
    if desired == current:
        return Decision(HOLD, current, current, f"{reason}; stays at {current}", wanted, notes)
    action = SCALE_UP if desired > current else SCALE_DOWN
    cooldown = rules.up_cooldown if action == SCALE_UP else rules.down_cooldown
    if since_last_scale is not None and since_last_scale < cooldown:
        return Decision(HOLD, current, current,
                        f"{reason}; would scale to {desired} but the {'up' if action == SCALE_UP else 'down'} "
                        f"cooldown ({_fmt(float(cooldown))} s) has {_fmt(float(cooldown - since_last_scale))} s "
                        f"left", wanted, [*notes, "cooldown"])
    return Decision(action, current, desired, f"{reason}; {current} → {desired}", wanted, notes)
