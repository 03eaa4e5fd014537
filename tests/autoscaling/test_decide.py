"""The decision function: target tracking, thresholds, step limits, the min/max clamp, cooldowns."""
from ops_portal.autoscaling.decide import HOLD, NO_METRIC, SCALE_DOWN, SCALE_UP, Rules, decide


def rules(**fields):
    return Rules(**{"min_replicas": 1, "max_replicas": 10, "target": 50.0, "max_step_up": 4, "max_step_down": 1,
                    "up_cooldown": 60, "down_cooldown": 300, **fields})


def test_target_tracking_scales_to_replicas_times_value_over_target():
    decision = decide(rules(), current=2, value=100.0)
    assert (decision.action, decision.desired, decision.wanted) == (SCALE_UP, 4, 4)
    assert "2 × 100 ÷ target 50" in decision.reason and "2 → 4" in decision.reason
    # ceil: 3 × 60 ÷ 50 = 3.6 -> 4; exact multiples stay exact (3 × 60 ÷ 60 = 3, not 4)
    assert decide(rules(), current=3, value=60.0).desired == 4
    assert decide(rules(target=60.0), current=3, value=60.0).action == HOLD


def test_within_the_tolerance_nothing_changes():
    assert decide(rules(), current=4, value=54.0).action == HOLD  # 8 % above: inside 10 %
    held = decide(rules(), current=4, value=45.5)
    assert held.action == HOLD and held.desired == 4 and "within 10%" in held.reason
    assert decide(rules(tolerance=0.0), current=4, value=54.0).desired == 5


def test_a_total_is_divided_by_the_target_per_replica():
    decision = decide(rules(total=True, target=10.0), current=2, value=75.0)
    assert (decision.action, decision.desired) == (SCALE_UP, 6)
    assert decide(rules(total=True, target=10.0), current=6, value=12.0).desired == 5  # step down 1


def test_thresholds_step_up_above_and_down_below():
    r = rules(mode="thresholds", target=None, scale_up_above=80.0, scale_down_below=20.0, max_step_up=2)
    assert (decide(r, current=3, value=90.0).action, decide(r, current=3, value=90.0).desired) == (SCALE_UP, 5)
    assert (decide(r, current=3, value=10.0).action, decide(r, current=3, value=10.0).desired) == (SCALE_DOWN, 2)
    between = decide(r, current=3, value=50.0)
    assert between.action == HOLD and "between the thresholds" in between.reason


def test_step_limits_bound_each_decision():
    up = decide(rules(max_step_up=2), current=2, value=250.0)  # wants 10
    assert (up.wanted, up.desired) == (10, 4) and "step limit +2" in up.reason
    down = decide(rules(max_step_down=3), current=8, value=5.0)  # wants 1
    assert (down.action, down.wanted, down.desired) == (SCALE_DOWN, 1, 5) and "step limit -3" in down.reason


def test_min_and_max_clamp_the_desired_replicas():
    top = decide(rules(max_replicas=5, max_step_up=100), current=4, value=500.0)
    assert (top.desired, top.action) == (5, SCALE_UP) and "maximum 5" in top.reason
    bottom = decide(rules(min_replicas=2, max_step_down=100), current=4, value=1.0)
    assert (bottom.desired, bottom.action) == (2, SCALE_DOWN) and "minimum 2" in bottom.reason
    at_max = decide(rules(max_replicas=4), current=4, value=500.0)
    assert at_max.action == HOLD and at_max.desired == 4


def test_a_service_outside_its_bounds_is_brought_back_even_without_a_reading():
    assert decide(rules(min_replicas=2), current=0, value=None).desired == 2
    assert decide(rules(max_replicas=3, max_step_down=10), current=7, value=None).desired == 3
    nothing = decide(rules(), current=3, value=None)
    assert (nothing.action, nothing.desired) == (NO_METRIC, 3)


def test_cooldowns_hold_each_direction_for_its_own_time():
    held = decide(rules(), current=2, value=100.0, since_last_scale=20)
    assert held.action == HOLD and held.desired == 2 and "up cooldown (60 s) has 40 s left" in held.reason
    assert decide(rules(), current=2, value=100.0, since_last_scale=61).action == SCALE_UP
    # scale-down waits for the longer down cooldown even when an up-scale would be allowed by now
    down = decide(rules(), current=4, value=5.0, since_last_scale=120)
    assert down.action == HOLD and "down cooldown" in down.reason
    assert decide(rules(), current=4, value=5.0, since_last_scale=300).action == SCALE_DOWN
    assert decide(rules(), current=4, value=5.0, since_last_scale=None).action == SCALE_DOWN


def test_nothing_running_and_load_asks_for_one_replica():
    assert decide(rules(min_replicas=0), current=0, value=30.0).desired == 1
    assert decide(rules(min_replicas=0), current=0, value=0.0).action == HOLD
