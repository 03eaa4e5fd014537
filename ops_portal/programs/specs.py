"""Desired specs of portal-managed programs, checked before anything is stored or launched.

A spec is the fields of schedulers.process.base.ProgramSpec except the name (the program's own).
Each manager's backend has the rules of its configuration format (supervisord's ini quoting,
systemd's unit file passes, PM2's ecosystem file); they are applied here field by field, each
field alone on a spec that is otherwise valid, so an error names the field it is about. The whole
spec is then checked once more for rules that span fields. Nothing reaches a host before this.
"""
from dataclasses import asdict, fields, replace

from django.core.exceptions import ValidationError

from schedulers.process import pm2, supervisor_conf, systemd_unit
from schedulers.process.base import ProgramSpec

from .choices import Manager

SPEC_FIELDS = tuple(f.name for f in fields(ProgramSpec) if f.name != "name")
DEFAULTS = {name: value for name, value in asdict(ProgramSpec(name="x", command=["/bin/true"])).items()
            if name not in ("name", "command")}
LIMIT_FIELDS = ("memory_max", "cpu_quota", "tasks_max", "nofile")
# The backends raise these for a value they refuse (SpecError is a ValueError); odd JSON types may
# surface as TypeError or AttributeError inside a rule.
_REFUSED = (ValueError, TypeError, AttributeError, KeyError)


def _check_supervisord(spec):
    supervisor_conf.render(spec)


def _check_systemd(spec):
    systemd_unit.validate_spec(spec)


def _check_pm2(spec):
    pm2.ecosystem(spec)


CHECKS = {Manager.SUPERVISORD: _check_supervisord, Manager.SYSTEMD: _check_systemd, Manager.PM2: _check_pm2}


def check_name(manager, name):
    """A name the manager can create a program under; ValidationError({"name": [...]}) otherwise."""
    try:
        if manager == Manager.SUPERVISORD:
            if not isinstance(name, str) or not supervisor_conf.NAME.fullmatch(name):
                raise ValueError(f"{name!r} must be letters, digits, '_', '.' or '-' (at most 64, not starting "
                                 "with '.' or '-')")
        elif manager == Manager.SYSTEMD:
            if not isinstance(name, str) or not systemd_unit.PROGRAM_NAME.fullmatch(name):
                raise ValueError(f"{name!r} must be letters, digits, '_', '.' or '-' (at most 64, not starting "
                                 "with '.' or '-'); the unit is NAME.service")
        elif manager == Manager.PM2:
            pm2.app_name(name)
        else:
            raise ValidationError({"manager": [f"Must be one of {', '.join(Manager.values)}."]})
    except _REFUSED as exc:
        raise ValidationError({"name": [str(exc)]})
    return name


def _probe_base():
    """A spec every manager accepts, on which one field at a time is tried."""
    return ProgramSpec(name="probe", command=["/bin/true"], **DEFAULTS)


def clean_spec(manager, name, data):
    """The complete spec (every field, defaults filled in) for program `name` under `manager`, or
    ValidationError with one entry per refused field ("spec" for rules spanning fields)."""
    if manager not in CHECKS:
        raise ValidationError({"manager": [f"Must be one of {', '.join(Manager.values)}."]})
    if not isinstance(data, dict):
        raise ValidationError({"spec": ["Give the spec as an object of fields."]})
    errors = {}
    try:
        check_name(manager, name)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    unknown = sorted(set(data) - set(SPEC_FIELDS))
    if unknown:
        errors["spec"] = [f"Unknown fields: {', '.join(map(str, unknown))[:300]}. Known: {', '.join(SPEC_FIELDS)}."]
    if "command" not in data:
        errors["command"] = ["Give the command as a list of arguments."]
    check = CHECKS[manager]
    base = _probe_base()
    for key in SPEC_FIELDS:
        if key not in data:
            continue
        try:
            check(replace(base, **{key: data[key]}))
        except _REFUSED as exc:
            errors[key] = [str(exc)[:500]]
    if errors:
        raise ValidationError(errors)
    values = {**DEFAULTS, **{key: data[key] for key in SPEC_FIELDS if key in data}}
    values["command"] = list(values["command"])
    values["environment"] = dict(values["environment"])
    try:
        check(ProgramSpec(name=name, **values))
    except _REFUSED as exc:
        raise ValidationError({"spec": [str(exc)[:500]]})
    return values


def program_spec(name, spec):
    """The backend's ProgramSpec of a stored spec."""
    return ProgramSpec(name=name, **{key: spec[key] for key in SPEC_FIELDS if key in spec})
