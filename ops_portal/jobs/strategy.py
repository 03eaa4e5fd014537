"""Rollout strategies: validation and batching.

{"kind": "parallel", "limit": 20}
{"kind": "rolling", "batch_size": 5 | "batch_percent": 25, "limit": 5, "pause_seconds": 10,
 "max_failures": 1 | "max_failure_percent": 10,
 "health_gate": {"type": "http", "url": "http://127.0.0.1:8080/health", "timeout": 5, "retries": 3,
                 "interval": 2} | {"type": "command", "command": "curl -fsS ...", ...},
 "rollback_action": "host.rollback"}
{"kind": "parallel", "limit": 50, "slices": 2 | "slice_size": 500, "max_failures": 10}

limit bounds how many targets run at once (a thread pool of that size, never one per target).
When failed targets exceed the threshold, no new target starts and the rollout stops.

slices (or slice_size: targets per slice) splits a parallel job into slices of consecutive
targets, each run by whichever worker of the job's queue takes it (jobs.run_slice), with limit
applying per slice; the failure threshold counts the whole job's failures. Rolling batches,
health gates and rollback actions are not supported with slices (refused).
"""
import math
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from . import actions
from .choices import StrategyKind

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_SLICES = 64
KEYS = {"kind", "limit", "batch_size", "batch_percent", "pause_seconds", "max_failures", "max_failure_percent",
        "health_gate", "rollback_action", "slices", "slice_size"}
GATE_KEYS = {"type", "url", "command", "timeout", "retries", "interval"}


def _int(value, name, low, high, errors):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{name} must be a whole number from {low} to {high}.")


def validate(strategy):
    if strategy in (None, {}):
        return {"kind": StrategyKind.PARALLEL, "limit": DEFAULT_LIMIT}
    if not isinstance(strategy, dict):
        raise ValidationError({"strategy": ["Give the strategy as an object."]})
    errors = []
    unknown = set(strategy) - KEYS
    if unknown:
        errors.append(f"Unknown strategy keys: {', '.join(sorted(unknown))}.")
    kind = strategy.get("kind", StrategyKind.PARALLEL)
    if kind not in StrategyKind.values:
        errors.append(f"kind must be one of {', '.join(StrategyKind.values)}.")
    result = {"kind": kind, "limit": strategy.get("limit", DEFAULT_LIMIT)}
    _int(result["limit"], "limit", 1, MAX_LIMIT, errors)
    if kind == StrategyKind.ROLLING:
        if ("batch_size" in strategy) == ("batch_percent" in strategy):
            errors.append("A rolling strategy needs batch_size or batch_percent (one of them).")
        if "batch_size" in strategy:
            _int(strategy["batch_size"], "batch_size", 1, 10000, errors)
        if "batch_percent" in strategy:
            _int(strategy["batch_percent"], "batch_percent", 1, 100, errors)
        for key in ("batch_size", "batch_percent"):
            if key in strategy:
                result[key] = strategy[key]
        result["pause_seconds"] = strategy.get("pause_seconds", 0)
        _int(result["pause_seconds"], "pause_seconds", 0, 86400, errors)
    elif any(k in strategy for k in ("batch_size", "batch_percent", "pause_seconds", "health_gate")):
        errors.append("Batches, pauses and health gates belong to a rolling strategy.")
    if "max_failures" in strategy and strategy["max_failures"] is not None:
        _int(strategy["max_failures"], "max_failures", 0, 100000, errors)
        result["max_failures"] = strategy["max_failures"]
    if "max_failure_percent" in strategy and strategy["max_failure_percent"] is not None:
        _int(strategy["max_failure_percent"], "max_failure_percent", 0, 100, errors)
        result["max_failure_percent"] = strategy["max_failure_percent"]
    gate = strategy.get("health_gate")
    if gate is not None:
        result["health_gate"] = _validate_gate(gate, errors)
    rollback = strategy.get("rollback_action")
    if rollback is not None:
        if actions.get(rollback) is None:
            errors.append(f"rollback_action {rollback!r} is not a known action.")
        elif actions.get(rollback).run is None:
            errors.append(f"rollback_action {rollback!r} runs per batch, not on one target.")
        result["rollback_action"] = rollback
    _validate_slices(strategy, result, errors)
    if errors:
        raise ValidationError({"strategy": errors})
    return result


def _validate_slices(strategy, result, errors):
    slices, size = strategy.get("slices"), strategy.get("slice_size")
    if slices is None and size is None:
        return
    if slices is not None and size is not None:
        errors.append("slices or slice_size: give one of them, not both.")
        return
    if slices is not None:
        _int(slices, "slices", 1, MAX_SLICES, errors)
        result["slices"] = slices
    else:
        _int(size, "slice_size", 1, 100000, errors)
        result["slice_size"] = size
    if result.get("kind") == StrategyKind.ROLLING or "health_gate" in strategy or \
            strategy.get("rollback_action") is not None:
        errors.append("slices go with a parallel strategy: rolling batches, health gates and rollback actions "
                      "are not supported with slices.")


def plan_slices(count, strategy):
    """[(first, last), ...]: the target index ranges of the job's slices (consecutive, sizes
    differing by at most one), or [] when the job is not sliced (one slice or none asked)."""
    if count == 0:
        return []
    if strategy.get("slice_size"):
        wanted = math.ceil(count / strategy["slice_size"])
    else:
        wanted = strategy.get("slices") or 1
    wanted = min(wanted, count, MAX_SLICES)
    if wanted <= 1:
        return []
    base, extra = divmod(count, wanted)
    ranges, start = [], 0
    for number in range(wanted):
        end = start + base + (number < extra)
        ranges.append((start, end))
        start = end
    return ranges


def _validate_gate(gate, errors):
    if not isinstance(gate, dict) or set(gate) - GATE_KEYS:
        errors.append(f"health_gate must be an object with keys among {', '.join(sorted(GATE_KEYS))}.")
        return {}
    clean = {"type": gate.get("type"), "timeout": gate.get("timeout", 5), "retries": gate.get("retries", 3),
             "interval": gate.get("interval", 2)}
    _int(clean["timeout"], "health_gate.timeout", 1, 300, errors)
    _int(clean["retries"], "health_gate.retries", 1, 100, errors)
    _int(clean["interval"], "health_gate.interval", 0, 600, errors)
    if clean["type"] == "http":
        url = gate.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
            errors.append("health_gate.url must be an http(s) URL.")
        clean["url"] = url
    elif clean["type"] == "command":
        if not isinstance(gate.get("command"), str) or not gate["command"].strip():
            errors.append("health_gate.command must be a command line.")
        clean["command"] = gate.get("command")
    else:
        errors.append("health_gate.type must be http or command.")
    return clean


def batches(count, strategy):
    """Split target indexes 0..count-1 into batches."""
    if strategy.get("kind") != StrategyKind.ROLLING or count == 0:
        return [list(range(count))]
    size = strategy.get("batch_size") or max(1, math.ceil(count * strategy["batch_percent"] / 100))
    return [list(range(start, min(start + size, count))) for start in range(0, count, size)]


def failure_threshold(count, strategy):
    """How many failed targets are tolerated before the rollout stops (None: no limit)."""
    limits = []
    if strategy.get("max_failures") is not None:
        limits.append(strategy["max_failures"])
    if strategy.get("max_failure_percent") is not None:
        limits.append(math.floor(count * strategy["max_failure_percent"] / 100))
    return min(limits) if limits else None
