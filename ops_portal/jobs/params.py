"""Typed parameters: definitions on templates and actions, strict validation of values.

A definition is a dict: {"name", "type", "required", "default", "choices", "min", "max",
"max_length", "pattern", "label", "help"} with type one of string, text, int, bool, choice, secret.
"""
import re

from django.core.exceptions import ValidationError

TYPES = ("string", "text", "int", "bool", "choice", "secret")
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")
KEYS = {"name", "type", "required", "default", "choices", "min", "max", "max_length", "pattern", "label", "help"}
SECRET_MARK = "<secret>"


def validate_definitions(definitions):
    """Check a list of parameter definitions; raise ValidationError({"parameters": [...]})."""
    errors = []
    if not isinstance(definitions, list):
        raise ValidationError({"parameters": ["Give a list of parameter definitions."]})
    seen = set()
    for index, item in enumerate(definitions):
        where = f"parameter {index + 1}"
        errors_before = len(errors)
        if not isinstance(item, dict):
            errors.append(f"{where}: must be an object.")
            continue
        unknown = set(item) - KEYS
        if unknown:
            errors.append(f"{where}: unknown keys {', '.join(sorted(unknown))}.")
        name, kind = item.get("name"), item.get("type")
        if not isinstance(name, str) or not NAME.match(name):
            errors.append(f"{where}: name must be a lower-case identifier.")
        elif name in seen:
            errors.append(f"{where}: {name} is defined twice.")
        seen.add(name)
        if kind not in TYPES:
            errors.append(f"{where}: type must be one of {', '.join(TYPES)}.")
        if kind == "choice" and (not isinstance(item.get("choices"), list) or not item["choices"]):
            errors.append(f"{where}: a choice needs a non-empty list of choices.")
        if kind == "secret" and item.get("default") not in (None, ""):
            # A default would sit in the template, in clear, for every viewer to read.
            errors.append(f"{where}: a secret has no default: its value is asked at launch.")
        for key in ("min", "max", "max_length"):
            bound = item.get(key)
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)
                                      or abs(bound) > 2**63 - 1 or (key == "max_length" and bound < 1)):
                errors.append(f"{where}: {key} must be a whole number{' above 0' if key == 'max_length' else ''}.")
        for key in ("label", "help"):
            if item.get(key) is not None and (not isinstance(item[key], str) or len(item[key]) > 500):
                errors.append(f"{where}: {key} must be text of at most 500 characters.")
        if "required" in item and not isinstance(item["required"], bool):
            errors.append(f"{where}: required must be true or false.")
        if kind == "choice" and isinstance(item.get("choices"), list) and not all(
                isinstance(c, str) and c and "\x00" not in c for c in item["choices"]):
            errors.append(f"{where}: choices must be non-empty texts.")
        if item.get("pattern") is not None:
            try:
                re.compile(item["pattern"])
            except (re.error, TypeError):
                errors.append(f"{where}: pattern is not a valid regular expression.")
        if "default" in item and item["default"] is not None and len(errors) == errors_before:
            try:
                _coerce(item, item["default"])
            except ValueError as exc:
                errors.append(f"{where}: default {exc}")
    if errors:
        raise ValidationError({"parameters": errors})


def _coerce(definition, value):
    kind = definition["type"]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
                value = int(value)
            else:
                raise ValueError("must be a whole number.")
        if abs(value) > 2**63 - 1:
            raise ValueError("is out of range.")
        if definition.get("min") is not None and value < definition["min"]:
            raise ValueError(f"must be at least {definition['min']}.")
        if definition.get("max") is not None and value > definition["max"]:
            raise ValueError(f"must be at most {definition['max']}.")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("must be true or false.")
    if not isinstance(value, str):
        raise ValueError("must be text.")
    if kind == "choice":
        if value not in definition["choices"]:
            raise ValueError(f"must be one of {', '.join(map(str, definition['choices']))}.")
        return value
    limit = definition.get("max_length") or (65536 if kind == "text" else 4096)
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters.")
    if kind in ("string", "secret") and ("\n" in value or "\x00" in value):
        raise ValueError("must be one line.")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters.")
    if definition.get("pattern") and not re.fullmatch(definition["pattern"], value):
        raise ValueError(f"must match {definition['pattern']}.")
    return value


def clean_values(definitions, values, *, field="parameters"):
    """Validate values against definitions: unknown names, types, bounds, required, defaults.

    Returns (public, secret): secret values are split out so they can be stored encrypted.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValidationError({field: ["Give the parameters as an object."]})
    by_name = {d["name"]: d for d in definitions}
    errors = {}
    unknown = sorted(set(values) - set(by_name))
    for name in unknown:
        errors[name] = ["Unknown parameter."]
    public, secret = {}, {}
    for name, definition in by_name.items():
        if name in values and values[name] not in (None, ""):
            try:
                value = _coerce(definition, values[name])
            except ValueError as exc:
                errors[name] = [str(exc)]
                continue
        elif definition.get("default") is not None:
            value = definition["default"]
        elif definition.get("required"):
            errors[name] = ["This parameter is required."]
            continue
        else:
            continue
        (secret if definition["type"] == "secret" else public)[name] = value
    if errors:
        raise ValidationError({field: [f"{name}: {' '.join(msgs)}" for name, msgs in errors.items()]})
    return public, secret


def check_given(definitions, values, *, field):
    """Validate the values given (not the missing ones) against their definitions."""
    by_name = {d["name"]: d for d in definitions}
    errors = []
    for name, value in values.items():
        if name in by_name and value is not None:
            try:
                _coerce(by_name[name], value)
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
    if errors:
        raise ValidationError({field: errors})


def redacted(public, secret):
    """Parameters as shown to people: secrets replaced by a marker."""
    return {**public, **{name: SECRET_MARK for name in secret}}


def secret_names(*definition_lists):
    """The names typed secret in any of the definition lists (a template's and its action's)."""
    return {d["name"] for definitions in definition_lists for d in definitions or () if d.get("type") == "secret"}


def split(values, names):
    """(public, secret): the values whose names are secret, split out to be stored encrypted."""
    public = {name: value for name, value in values.items() if name not in names}
    return public, {name: value for name, value in values.items() if name in names}


MIN_MASKED_LENGTH = 4  # shorter values would mask ordinary words in the output


def masker(secret):
    """A function that replaces every secret value in a text by the marker (job output, errors)."""
    values = sorted({str(v) for v in secret.values() if len(str(v)) >= MIN_MASKED_LENGTH}, key=len, reverse=True)
    if not values:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(v) for v in values))

    def mask(text):
        return pattern.sub(SECRET_MARK, text) if isinstance(text, str) and text else text

    return mask
