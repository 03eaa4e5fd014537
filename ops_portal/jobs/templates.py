"""Job templates: create, change (a new version, and the schedules that run it re-checked) and
delete. Each change is audited in its transaction (audit.crud)."""
from django.core.exceptions import ValidationError
from django.db import transaction

from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import snapshot
from ops_portal.core import targets as target_kinds

from . import actions, params
from . import strategy as strategies
from .models import JobTemplate
from .schedules import refresh_for_template


def clean_template_fields(fields, instance=None):
    merged = {**({} if instance is None else snapshot(instance)), **fields}
    spec = actions.get(merged.get("action"))
    if spec is None:
        raise ValidationError({"action": [f"Unknown action. Known: {', '.join(actions.all_actions())}."]})
    if "selector" in fields:
        fields["selector"] = target_kinds.validate(fields["selector"])
    if "strategy" in fields:
        fields["strategy"] = strategies.validate(fields["strategy"])
    if "parameters" in fields:
        params.validate_definitions(fields["parameters"])
    definitions = merged.get("parameters") or []
    fixed = fields.get("action_params", merged.get("action_params")) or {}
    if not isinstance(fixed, dict):
        raise ValidationError({"action_params": ["Give the fixed parameters as an object."]})
    overlap = set(fixed) & {d["name"] for d in definitions}
    if overlap:
        raise ValidationError({"action_params": [f"Also asked at launch: {', '.join(sorted(overlap))}."]})
    action_names = {d["name"] for d in spec.parameters}
    # An action taking extra parameters takes the template's own typed ones as data (extra vars).
    strays = (set(fixed) | (set() if spec.extra_parameters else {d["name"] for d in definitions})) - action_names
    if strays:
        raise ValidationError({"parameters": [f"{spec.name} has no parameter {n}." for n in sorted(strays)]})
    secret_fixed = [d["name"] for d in spec.parameters if d["type"] == "secret" and d["name"] in fixed]
    if secret_fixed:
        raise ValidationError({"action_params": ["Secrets are asked at launch, not stored in templates."]})
    params.check_given(spec.parameters, fixed, field="action_params")
    return fields


def create_template(actor, **fields):
    return create_object(actor, JobTemplate, {**clean_template_fields(dict(fields)), "updated_by_id": actor.user_id})


def update_template(actor, template, **fields):
    with transaction.atomic():
        fields = clean_template_fields(dict(fields), template)
        fields["version"] = template.version + 1
        fields["updated_by_id"] = actor.user_id
        template = update_object(actor, template, fields)
        refresh_for_template(actor, template)
    return template


def delete_template(actor, template):
    with transaction.atomic():
        # The template row first: deleting cascades to its schedules (see schedules: lock order).
        template = JobTemplate.objects.select_for_update().get(pk=template.pk)
        delete_object(actor, template)
