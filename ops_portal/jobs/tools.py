"""Hosts that cannot run an action (a tool it drives is missing from their facts) are left out of its
plan, with the reason: the preview lists them, the launch's audit row records them, and a launch that
leaves no host is refused with the reasons on the selector field."""
from django.core.exceptions import ValidationError

from ops_portal.inventory.models import Host
from ops_portal.inventory.targets import HOSTS

SHOWN = 20


def split(spec, entries):
    """(the entries that can run spec, [{"name", "reason"}] of the hosts left out)."""
    if spec.host_check is None:
        return entries, []
    ids = {int(e["ref_id"]) for e in entries if e["kind"] == HOSTS.name}
    rows = {pk: (facts, transport) for pk, facts, transport in
            Host.objects.filter(pk__in=ids).values_list("pk", "facts", "transport")}
    kept, excluded = [], []
    for entry in entries:
        row = rows.get(int(entry["ref_id"])) if entry["kind"] == HOSTS.name else None
        reason = spec.host_check(row[0] or {}, row[1]) if row is not None else ""
        if reason:
            excluded.append({"name": entry["name"], "reason": reason})
        else:
            kept.append(entry)
    return kept, excluded


def refuse_if_none_left(spec, kept, excluded):
    """A ValidationError on the selector when every matched host was left out."""
    if excluded and not kept:
        reasons = "; ".join(f"{e['name']}: {e['reason']}" for e in excluded[:SHOWN])
        more = f" (and {len(excluded) - SHOWN} more)" if len(excluded) > SHOWN else ""
        raise ValidationError({"selector": [f"No matched host can run {spec.label.lower()}: {reasons}{more}."]})


def tool_check(tool, *, ssh_only=True, agent=False, install=""):
    """A host_check: the host's facts name `tool` (and, with agent, a configured agent server); install
    names the job action that installs it, for the reason's advice."""
    def check(facts, transport):
        if ssh_only and transport == "local":
            return f"{tool} runs on hosts over SSH, not on the portal's own machine"
        if not facts:
            return "no facts gathered yet: gather facts to learn which tools it has"
        found = (facts.get("tools") or {}).get(tool)
        if not found:
            advice = f"install it ({install}), then gather facts" if install else "install it, then gather facts"
            return f"{tool} is not installed according to its facts: {advice}"
        if agent and not found.get("agent_server"):
            return f"its {tool} agent is not configured (no server in puppet.conf)"
        return ""
    return check
