"""Forms of the job template pages: the template's fields, and the parameter builder (one row per
parameter asked at launch, like AWX's surveys). The forms only turn what people type into the
values the API takes; the rules are the service's (templates.clean_template_fields, params)."""
import re

from django import forms

from . import actions, params
from .forms import JsonField


class JobTemplateForm(forms.Form):
    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)
    environment = forms.ModelChoiceField(queryset=None)
    action = forms.ChoiceField(choices=())
    selector = JsonField(initial='{"all": true}', help_text='Which targets, e.g. {"pattern": "web-*"}, '
                                                           '{"groups": ["db"]} or {"tags": ["blue"]}.')
    action_params = JsonField(required=False, empty={}, label="Fixed parameters",
                              help_text='Values of the action\'s parameters fixed by the template, e.g. '
                                        '{"command": "uptime"}. Secrets are asked at launch.')
    strategy = JsonField(required=False, empty={}, help_text='e.g. {"kind": "rolling", "batch_size": 2}; '
                                                             'empty: all in parallel.')
    timeout_seconds = forms.IntegerField(initial=3600, label="Timeout (seconds)")
    target_timeout_seconds = forms.IntegerField(required=False, label="Per-target timeout (seconds)")
    concurrency_limit = forms.IntegerField(required=False, help_text="Empty: no limit.")
    queue = forms.CharField(max_length=64, initial="default")
    enabled = forms.BooleanField(required=False, initial=True)
    # Where the service's verdict on the parameter definitions is shown (the builder fills it).
    parameters = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["action"].choices = [(a.name, f"{a.label} ({a.name})") for a in actions.all_actions().values()]

    @staticmethod
    def initial_from(template):
        fields = ("name", "description", "action", "selector", "action_params", "strategy", "timeout_seconds",
                  "target_timeout_seconds", "concurrency_limit", "queue", "enabled")
        initial = {name: getattr(template, name) for name in fields}
        initial["environment"] = template.environment_id
        return initial

    def values(self, definitions):
        """The keyword arguments of create_template / update_template."""
        data = dict(self.cleaned_data)
        data["parameters"] = definitions
        return data


class ParameterForm(forms.Form):
    """One parameter asked at launch."""

    name = forms.CharField(max_length=63, help_text="lower_case identifier: an action parameter's name")
    label = forms.CharField(max_length=500, required=False)
    type = forms.ChoiceField(choices=[(t, t) for t in params.TYPES], initial="string")
    required = forms.BooleanField(required=False)
    default = forms.CharField(max_length=4096, required=False, strip=False)
    choices = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="choice: one a line")
    min = forms.IntegerField(required=False)
    max = forms.IntegerField(required=False)
    help = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():  # a table row shows no labels: name each input
            field.widget.attrs.setdefault("aria-label", f"Parameter {name}")

    def definition(self):
        """The definition dict params.validate_definitions checks (only the keys given)."""
        data = self.cleaned_data
        item = {"name": data["name"].strip(), "type": data["type"], "required": data["required"]}
        for key in ("label", "help"):
            if data[key]:
                item[key] = data[key]
        if data["choices"].strip():
            item["choices"] = [line.strip() for line in data["choices"].splitlines() if line.strip()]
        for key in ("min", "max"):
            if data[key] is not None:
                item[key] = data[key]
        default = data["default"]
        if default != "":
            # As typed; the service says when it does not fit the type (a secret has none at all).
            if data["type"] == "int" and re.fullmatch(r"-?\d{1,18}", default.strip()):
                default = int(default)
            elif data["type"] == "bool" and default.strip().lower() in ("true", "false"):
                default = default.strip().lower() == "true"
            item["default"] = default
        return item

    @staticmethod
    def initial_from(definition):
        initial = {key: definition.get(key) for key in ("name", "label", "type", "min", "max", "help")}
        initial["required"] = bool(definition.get("required"))
        default = definition.get("default")
        initial["default"] = "" if default is None else str(default).lower() if isinstance(default, bool) else default
        initial["choices"] = "\n".join(definition.get("choices") or [])
        return initial


class BaseParameterFormSet(forms.BaseFormSet):
    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields["DELETE"].widget.attrs["aria-label"] = "Remove this parameter"


ParameterFormSet = forms.formset_factory(ParameterForm, formset=BaseParameterFormSet, extra=1, can_delete=True,
                                         max_num=50, validate_max=True)


def parameter_formset(data=None, template=None):
    initial = [ParameterForm.initial_from(d) for d in template.parameters] if template is not None else None
    return ParameterFormSet(data, initial=initial, prefix="param")


def definitions(formset):
    """The definitions of the rows kept: existing rows unless removed, new rows when filled in."""
    kept = []
    for index, form in enumerate(formset.forms):
        data = getattr(form, "cleaned_data", None)
        if not data or data.get("DELETE"):
            continue
        if index >= formset.initial_form_count() and not form.has_changed():
            continue
        kept.append(form.definition())
    return kept
