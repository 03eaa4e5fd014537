"""Target selectors: which hosts (or, later, containers and programs) a job acts on.

{"kind": "host", "names": ["web-01"], "pattern": "web-*", "groups": ["web"], "tags": ["blue"],
 "all": false}

Criteria combine with AND; values inside a list with OR. Targets always come from the job's own
environment and must be enabled. A selector with no criteria must say {"all": true}.
"""
import fnmatch
import re

from django.core.exceptions import ValidationError

from ops_portal.inventory.models import Host

KINDS = ("host",)
KEYS = {"kind", "names", "pattern", "groups", "tags", "all"}
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:*?-]{0,127}$")


def validate(selector):
    if not isinstance(selector, dict):
        raise ValidationError({"selector": ["Give the selector as an object."]})
    errors = []
    unknown = set(selector) - KEYS
    if unknown:
        errors.append(f"Unknown selector keys: {', '.join(sorted(unknown))}.")
    if selector.get("kind", "host") not in KINDS:
        errors.append(f"kind must be one of {', '.join(KINDS)}.")
    for key in ("names", "groups", "tags"):
        value = selector.get(key)
        if value is not None and (not isinstance(value, list) or not all(
                isinstance(v, str) and _WORD.match(v) for v in value)):
            errors.append(f"{key} must be a list of names.")
    pattern = selector.get("pattern")
    if pattern is not None and (not isinstance(pattern, str) or not _WORD.match(pattern)):
        errors.append("pattern must be a shell-style name pattern such as web-*.")
    if "all" in selector and not isinstance(selector["all"], bool):
        errors.append("all must be true or false.")
    if not errors and not selector.get("all") and not any(selector.get(k) for k in ("names", "pattern", "groups",
                                                                                      "tags")):
        errors.append("Say which targets (names, pattern, groups or tags), or all: true.")
    if errors:
        raise ValidationError({"selector": errors})
    return {"kind": selector.get("kind", "host"), **{k: v for k, v in selector.items() if k != "kind"}}


def _hosts(selector, environment):
    queryset = Host.objects.filter(environment=environment, enabled=True).select_related("credential")
    if selector.get("names"):
        queryset = queryset.filter(name__in=selector["names"])
    if selector.get("groups"):
        queryset = queryset.filter(groups__name__in=selector["groups"]).distinct()
    hosts = list(queryset.order_by("name"))
    if selector.get("tags"):
        wanted = set(selector["tags"])
        hosts = [h for h in hosts if wanted & set(h.tags)]
    if selector.get("pattern"):
        hosts = [h for h in hosts if fnmatch.fnmatchcase(h.name, selector["pattern"])]
    return hosts


def host_fingerprint(host):
    """What an approver approves about a host: where it is and how the portal reaches it."""
    return {"address": host.address, "port": host.port, "transport": host.transport, "user": host.login_user,
            "credential": host.credential.name if host.credential_id else None, "host_key": host.host_key}


def resolve(selector, environment):
    """The targets a selector matches now, as plan entries [{kind, ref_id, name, fingerprint}]."""
    selector = validate(selector)
    if selector["kind"] == "host":
        return [{"kind": "host", "ref_id": h.pk, "name": h.name, "fingerprint": host_fingerprint(h)}
                for h in _hosts(selector, environment)]
    raise ValidationError({"selector": ["Unsupported target kind."]})
