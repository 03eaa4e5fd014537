"""Validators anchor at the very end of the value: `$` also matches before a trailing newline, so
"web-1\n" would pass a `^...$` pattern and reach a host, a selector or a log."""
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from ops_portal.core import targets
from ops_portal.inventory.models import address_validator, name_validator, username_validator, validate_tags
from ops_portal.jobs import params

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("validator, good", [
    (name_validator, "web-1"), (address_validator, "127.0.0.1"), (username_validator, "deploy"),
])
def test_model_validators_refuse_a_trailing_newline(validator, good):
    validator(good)
    with pytest.raises(ValidationError):
        validator(good + "\n")


def test_tags_selectors_and_parameter_names_refuse_a_trailing_newline():
    validate_tags(["blue"])
    with pytest.raises(ValidationError):
        validate_tags(["blue\n"])
    kind = targets.get("host")
    assert kind.validate_selector({"names": ["web-1"]})["names"] == ["web-1"]
    with pytest.raises(ValidationError):
        kind.validate_selector({"names": ["web-1\n"]})
    with pytest.raises(ValidationError):
        kind.validate_selector({"pattern": "web-*\n"})
    assert params.NAME.fullmatch("release_id") and not params.NAME.match("release_id\n")


def test_no_validator_pattern_ends_in_a_dollar():
    """A regular expression that validates input ends in \\Z, never $ (grep of the code)."""
    offenders = []
    for path in [*ROOT.glob("ops_portal/**/*.py"), *ROOT.glob("schedulers/**/*.py")]:
        if "migrations" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"(re\.compile|RegexValidator|re\.match|re\.fullmatch)\(r[\"']\^[^\"']*\$[\"']", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []
