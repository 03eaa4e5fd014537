"""Target kinds: what a job can act on, and how each kind is selected, loaded, fingerprinted for a
plan, leased and shown. Hosts today (inventory/targets.py); containers, services, programs and
processes register their kinds the same way as those levels arrive.

An app declares its kinds in `<app>/targets.py` (loaded at start-up by core.declarations). The
jobs engine asks this registry and never names a kind: a selector says its kind
({"kind": "host", "pattern": "web-*"}), resolving it gives plan entries
[{kind, ref_id, name, fingerprint}], and the runner, approvals, relaunches and leases go through
the entry's kind.

The registry lives in core so that any level app can register a kind without importing jobs.
"""
import fnmatch
import re

from django.core.exceptions import ValidationError

DEFAULT_KIND = "host"  # a selector without "kind" selects hosts (every selector stored before kinds)
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:*?-]{0,127}\Z")
_KINDS: dict[str, "TargetKind"] = {}


class TargetKind:
    """One kind of target. Subclasses set name and label and implement `queryset` (or override
    `select`), `fingerprint` and `environment_of`; the rest has sensible defaults."""

    name = ""
    label = ""
    # Selector keys besides "kind": lists of names (matched with OR), a shell-style pattern on the
    # name, all: true. A kind lists the ones it supports.
    list_keys = ("names",)
    pattern = True

    # Selecting --------------------------------------------------------------------------------

    def keys(self):
        return {"kind", "all", *self.list_keys, *(["pattern"] if self.pattern else [])}

    def validate_selector(self, selector):
        """The selector cleaned (with its kind), or ValidationError({"selector": [...]})."""
        errors = []
        unknown = set(selector) - self.keys()
        if unknown:
            errors.append(f"Unknown selector keys: {', '.join(sorted(unknown))}.")
        for key in self.list_keys:
            value = selector.get(key)
            if value is not None and (not isinstance(value, list) or not all(
                    isinstance(v, str) and _WORD.fullmatch(v) for v in value)):
                errors.append(f"{key} must be a list of names.")
        pattern = selector.get("pattern")
        if pattern is not None and (not isinstance(pattern, str) or not _WORD.fullmatch(pattern)):
            errors.append("pattern must be a shell-style name pattern such as web-*.")
        if "all" in selector and not isinstance(selector["all"], bool):
            errors.append("all must be true or false.")
        criteria = [self.list_keys[0], *(["pattern"] if self.pattern else []), *self.list_keys[1:]]
        if not errors and not selector.get("all") and not any(selector.get(k) for k in criteria):
            said = ", ".join(criteria[:-1]) + " or " + criteria[-1] if len(criteria) > 1 else criteria[0]
            errors.append(f"Say which targets ({said}), or all: true.")
        if errors:
            raise ValidationError({"selector": errors})
        return {"kind": self.name, **{k: v for k, v in selector.items() if k != "kind"}}

    def select(self, selector, environment):
        """The enabled objects of the environment that a clean selector matches, in plan order."""
        objects = list(self.queryset(selector, environment))
        if selector.get("pattern"):
            objects = [obj for obj in objects if fnmatch.fnmatchcase(self.display_name(obj), selector["pattern"])]
        return objects

    def queryset(self, selector, environment):
        raise NotImplementedError

    def resolve(self, selector, environment):
        """Plan entries for a clean selector: [{kind, ref_id, name, fingerprint}]."""
        return [self.entry(obj) for obj in self.select(selector, environment)]

    # Objects behind plan entries --------------------------------------------------------------

    def load(self, ref_ids):
        """{ref_id: object} of those that still exist (whatever their state or environment)."""
        raise NotImplementedError

    def available(self, ref_ids, environment):
        """{ref_id: object} of those that can still be targets in `environment` (a relaunch)."""
        raise NotImplementedError

    def fingerprint(self, obj):
        """What an approver approves about the object: a change of it invalidates an approval."""
        raise NotImplementedError

    def environment_of(self, obj):
        """The id of the environment the object belongs to (for permission checks)."""
        return obj.environment_id

    def display_name(self, obj):
        return obj.name

    def entry(self, obj):
        return {"kind": self.name, "ref_id": obj.pk, "name": self.display_name(obj),
                "fingerprint": self.fingerprint(obj)}

    def is_local(self, entry):
        """True when the plan entry is the portal's own machine (administrators of all environments only)."""
        return False

    def sites(self, ref_ids):
        """{ref_id: site name or None}: where each target is, so a job runs on its site's workers.
        Kinds without sites put every target on none (the default queue)."""
        return dict.fromkeys(ref_ids)

    # Leases and pages -------------------------------------------------------------------------

    def lease_key(self, ref_id):
        """One job at a time changes the target holding this key."""
        return f"{self.name}:{ref_id}"

    def url(self, ref_id):
        """The page of the object, or None."""
        return None


def register(kind):
    if not kind.name or kind.name in _KINDS:
        raise ValueError(f"target kind {kind.name!r} is unnamed or registered twice")
    _KINDS[kind.name] = kind
    return kind


def get(name):
    """The registered kind, or None."""
    return _KINDS.get(name)


def all_kinds():
    return dict(sorted(_KINDS.items()))


def kind_of(selector):
    """The kind a selector names (the default kind when it names none)."""
    name = selector.get("kind", DEFAULT_KIND)
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValidationError({"selector": [f"kind must be one of {', '.join(all_kinds()) or 'nothing yet'}."]})
    return kind


def validate(selector):
    """A selector cleaned by its kind; ValidationError({"selector": [...]}) when it is not one."""
    if not isinstance(selector, dict):
        raise ValidationError({"selector": ["Give the selector as an object."]})
    return kind_of(selector).validate_selector(selector)


def resolve(selector, environment):
    """The targets a selector matches now, as plan entries [{kind, ref_id, name, fingerprint}]."""
    selector = validate(selector)
    return kind_of(selector).resolve(selector, environment)


def load(refs):
    """{(kind, ref_id): object} for (kind, ref_id) pairs, one query per kind."""
    by_kind = {}
    for kind_name, ref_id in refs:
        by_kind.setdefault(kind_name, []).append(ref_id)
    found = {}
    for kind_name, ref_ids in by_kind.items():
        kind = _KINDS.get(kind_name)
        if kind is None:
            continue  # a kind no longer installed: its targets count as gone
        found.update({(kind_name, ref_id): obj for ref_id, obj in kind.load(ref_ids).items()})
    return found


def current_entries(refs):
    """Plan entries for (kind, ref_id) pairs as the objects are now; {"missing": True} as the
    fingerprint of one that is gone."""
    objects = load(refs)
    entries = []
    for kind_name, ref_id in refs:
        obj = objects.get((kind_name, ref_id))
        entries.append(_KINDS[kind_name].entry(obj) if obj is not None else
                       {"kind": kind_name, "ref_id": ref_id, "name": "", "fingerprint": {"missing": True}})
    return entries


def lease_key(kind_name, ref_id):
    kind = _KINDS.get(kind_name)
    return kind.lease_key(ref_id) if kind is not None else f"{kind_name}:{ref_id}"
