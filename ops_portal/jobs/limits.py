"""A launch's limit: narrowing what a template's selector matches to some of its targets, as
Ansible's --limit and AWX's launch-time limit do. It never widens: a name or pattern that matches
nothing of the template's targets adds nothing, and a limit that leaves no target is refused.

    "web-1"            one target by name
    "web-1, web-2"     several (commas or spaces)
    "web-*,db-?"       shell-style patterns (fnmatch, case-sensitive)
"""
import fnmatch
import re

from django.core.exceptions import ValidationError

MAX_LENGTH = 1000
_ITEM = re.compile(r"[A-Za-z0-9_.:@*?\[\]!-]{1,253}\Z")


def parse(text):
    """The limit's names and patterns, or [] for no limit; a ValidationError on the `limit` field
    for anything else than names and patterns."""
    if text is None:
        return []
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise ValidationError({"limit": [f"Give names or patterns separated by commas (at most {MAX_LENGTH} "
                                         "characters)."]})
    items = [item for item in re.split(r"[,\s]+", text.strip()) if item]
    bad = [item for item in items if not _ITEM.match(item)]
    if bad:
        raise ValidationError({"limit": [f"Not a name or pattern: {', '.join(repr(b) for b in bad[:5])} (letters, "
                                         "digits, . _ - : @ and the wildcards * ? [ ])."]})
    return items


def narrow(entries, text):
    """The target entries (dicts with "name") the limit keeps, in their order; all of them without a
    limit. Refuses a limit that keeps none, naming how many the template matched."""
    patterns = parse(text)
    if not patterns:
        return entries
    kept = [entry for entry in entries if any(fnmatch.fnmatchcase(entry["name"], p) for p in patterns)]
    if not kept:
        raise ValidationError({"limit": [f"The limit {', '.join(patterns)} keeps none of the {len(entries)} "
                                         f"target{'s' if len(entries) != 1 else ''} the template matches."]})
    return kept
