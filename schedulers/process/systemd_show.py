"""Reading what `systemctl show` and `journalctl -o json` print, for the systemd manager."""


def gave_up(p):
    """True when systemd stopped restarting the unit: it failed as often as its start limit allows.

    systemd 252 keeps the Result of the last run (exit-code, signal) when an automatic
    restart hits the limit; only a manual start reports start-limit-hit.
    """
    if p.get("Result") == "start-limit-hit":
        return True
    burst = to_int(p.get("StartLimitBurst")) or 0
    return p.get("ActiveState") == "failed" and burst > 0 and (to_int(p.get("NRestarts")) or 0) >= burst


def blocks(out):
    block = {}
    for line in out.splitlines() + [""]:
        if line.strip():
            key, _, value = line.partition("=")
            block[key] = value
        elif block:
            yield block
            block = {}


def to_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def stamp(value):
    """Seconds since the epoch from `@1700000000` (--timestamp=unix); None when unset or not unix."""
    if value and value.startswith("@"):
        return to_int(value[1:])
    return None


def limit(value):
    return None if value in (None, "", "infinity", "[not set]") else to_int(value)


def cpu_percent(value):
    """CPUQuotaPerSecUSec ("500ms", "1s", "infinity") as percent of one CPU."""
    if not value or value == "infinity":
        return None
    total = 0.0
    for part in value.split():
        for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("min", 60), ("s", 1)):
            if part.endswith(unit) and part[: -len(unit)].replace(".", "", 1).isdigit():
                total += float(part[: -len(unit)]) * scale
                break
    return round(total * 100) or None


def signal_of(status):
    names = {"1": "HUP", "2": "INT", "3": "QUIT", "6": "ABRT", "9": "KILL", "11": "SEGV", "13": "PIPE", "14": "ALRM",
             "15": "TERM"}
    return names.get(status or "", status or "")


def message(value):
    if isinstance(value, list):  # the journal gives non-UTF-8 messages as byte arrays
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def reason(p, status):
    """Why the unit is not running (or last stopped), in plain words."""
    result = p.get("Result", "")
    if result == "oom-kill":
        limit = status.limits.get("memory_max")
        return "killed for going over its memory limit" + (f" (MemoryMax={limit} bytes)" if limit else "")
    if gave_up(p):
        return (f"restarted too often ({status.restarts or 0} restarts): systemd gave up on it (crash loop); "
                "start it again once the cause is fixed")
    if p.get("SubState") == "auto-restart":
        return f"exited and waits to be restarted ({status.restarts or 0} restarts so far)"
    if result == "exit-code":
        return f"exited with code {p.get('ExecMainStatus')}"
    if result in ("signal", "core-dump"):
        return f"killed by signal {signal_of(p.get('ExecMainStatus'))}" + (" (core dumped)" if result == "core-dump"
                                                                        else "")
    if result == "timeout":
        return "timed out starting or stopping"
    if result and result != "success":
        return f"failed: {result}"
    return ""
